"""The committed AsyncAPI document is what the code declares: regenerate it with `make asyncapi`."""

import importlib.util
import json
from pathlib import Path

from publipost_contracts import ALL_EVENTS

CONTRACTS = Path(__file__).parents[2] / "contracts"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_asyncapi", CONTRACTS / "generate_asyncapi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_document_matches_the_code():
    generator = _generator()
    committed = (CONTRACTS / "asyncapi.json").read_text()
    assert generator.render(generator.generate()) == committed, "contracts/asyncapi.json is stale: run `make asyncapi`"


def test_every_message_is_described_with_its_envelope():
    document = json.loads((CONTRACTS / "asyncapi.json").read_text())
    schemas = document["components"]["schemas"]
    for event in ALL_EVENTS:
        assert event.__name__ in schemas, f"{event.__name__} is neither published nor consumed by any service"
        properties = schemas[event.__name__]["properties"]
        for field in ("event_id", "type", "schema_version", "occurred_at", "tenant_id", "correlation_id", "causation_id"):
            assert field in properties, f"{event.__name__} lacks envelope field {field}"
