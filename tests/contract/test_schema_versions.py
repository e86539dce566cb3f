"""A change of a service's indexes is a new schema version: the migration makes them, and replicas of the
new release wait for it (publipost_storage.schema). cli/publipost/schema_versions.json records, per service
and version, what its indexes were; a changed index under an unchanged version fails here."""

import json
from pathlib import Path

from publipost.migrate import SERVICES, build

RECORDED = Path(__file__).parents[2] / "cli" / "publipost" / "schema_versions.json"


def test_each_service_s_indexes_are_those_recorded_for_its_schema_version():
    recorded = json.loads(RECORDED.read_text())
    for name in SERVICES:
        schema = build(name).schema
        history = recorded.get(name, {})
        assert str(schema.version) in history, (
            f"{name}: schema version {schema.version} is not recorded: add "
            f'"{schema.version}": "{schema.index_digest()}" under "{name}" in {RECORDED.name}'
        )
        assert history[str(schema.version)] == schema.index_digest(), (
            f"{name}: its indexes changed under schema version {schema.version}: raise schema_version in its app.py "
            f"(the migration makes the new ones before the new replicas start) and record the new version"
        )
        assert sorted(map(int, history)) == list(range(1, len(history) + 1)), f"{name}: versions are 1, 2, 3…"
