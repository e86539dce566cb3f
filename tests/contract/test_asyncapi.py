"""The committed AsyncAPI document is what the code declares: regenerate it with `make asyncapi`."""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

from publipost_contracts import ALL_EVENTS
from publipost_contracts.examples import EXAMPLES

CONTRACTS = Path(__file__).parents[2] / "contracts"
PARSER = Path(__file__).with_name("asyncapi_parser")


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
        for field in (
            "event_id",
            "type",
            "schema_version",
            "occurred_at",
            "tenant_id",
            "correlation_id",
            "causation_id",
        ):
            assert field in properties, f"{event.__name__} lacks envelope field {field}"


def test_the_official_asyncapi_parser_accepts_the_document_without_error_or_warning():
    assert shutil.which("node"), "Node.js is missing: run `make setup`"
    assert (PARSER / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is missing: run `make setup`"
    )
    run = subprocess.run(
        ["node", str(PARSER / "parse.mjs"), str(CONTRACTS / "asyncapi.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(run.stdout)
    serious = [d for d in result["diagnostics"] if d["severity"] in ("error", "warning")]
    assert serious == [] and result["valid"]


def test_every_message_carries_its_example_and_each_example_is_a_valid_message():
    document = json.loads((CONTRACTS / "asyncapi.json").read_text())
    for name, message in document["components"]["messages"].items():
        (example,) = message["examples"]
        event_type = next(e for e in ALL_EVENTS if e.__name__ == message["payload"]["$ref"].rsplit("/", 1)[-1])
        assert event_type.model_validate(example["payload"]) == EXAMPLES[event_type], name
        assert message["bindings"]["amqp"]["messageType"] == event_type.routing_key


def test_the_production_server_is_described():
    servers = json.loads((CONTRACTS / "asyncapi.json").read_text())["servers"]
    assert servers["production"]["protocol"] == "amqps"
