"""Every query the services run is index-backed: none reads a whole collection that grows with use.

While the session's other tests run, every service (in-process, or a process of an end-to-end stack)
records the shape of each query it sends (`PUBLIPOST_QUERY_LOG`, see publipost_storage.query_log). This
test runs after all of them, rebuilds every service's collections and indexes in a fresh namespace (the
tests drop theirs), and asks the database to `explain` each recorded query. A collection scan fails the
test, listing each query with the line that sends it. On SecantusDB a findAndModify fails it too:
explain shows the index its find uses, but SecantusDB writes it by a collection scan (see below).

An exception is written at the query, as its MongoDB comment, with the reason:

    await self.collection.find({}, comment="collection scan: one document per sending account of a tenant")

Any comment that starts with `collection scan: ` and gives a reason lets that query scan.
"""

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from bson import json_util
from publipost_dispatch.app import build as build_dispatch
from publipost_dispatch.settings import DispatchSettings
from publipost_merge.app import build as build_merge
from publipost_merge.settings import MergeSettings
from publipost_recipient_directory.app import build as build_directory
from publipost_recipient_directory.settings import RecipientDirectorySettings
from publipost_render_pdf.app import build as build_render
from publipost_render_pdf.settings import RenderPdfSettings
from publipost_scheduler.app import build as build_scheduler
from publipost_scheduler.settings import SchedulerSettings
from publipost_storage.query_log import read_query_log, shape_of
from publipost_template.app import build as build_template
from publipost_template.settings import TemplateSettings
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

BUILDERS = (
    (build_template, TemplateSettings),
    (build_directory, RecipientDirectorySettings),
    (build_merge, MergeSettings),
    (build_render, RenderPdfSettings),
    (build_dispatch, DispatchSettings),
    (build_scheduler, SchedulerSettings),
)
SCAN_REASON = "collection scan: "

pytestmark = pytest.mark.after_all_tests  # see tests/conftest.py


def _stages(plan: Any) -> Iterator[str]:
    if isinstance(plan, Mapping):
        if "stage" in plan:
            yield plan["stage"]
        for value in plan.values():
            yield from _stages(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _stages(value)


def _has_reason(comment: Any) -> bool:
    return isinstance(comment, str) and comment.startswith(SCAN_REASON) and bool(comment[len(SCAN_REASON) :].strip())


async def _explains_a_scan(database: AsyncDatabase, example: dict[str, Any], query: dict[str, Any]) -> bool:
    find = {"find": example["collection"], "filter": query}
    find |= {field: example[field] for field in ("sort", "hint") if field in example}
    explained = await database.command("explain", find, verbosity="queryPlanner")
    return "COLLSCAN" in _stages(explained["queryPlanner"]["winningPlan"])


async def _collection_scan(database: AsyncDatabase, example: dict[str, Any]) -> bool:
    """Whether the database reads the whole collection to answer the recorded query.

    It is explained as the `find` of the same filter, sort and hint, whatever the command: SecantusDB's
    explain reads a command's `filter` or `query` but not the `q` of an update or delete statement, so it
    says COLLSCAN for an update_many or delete_many by an indexed field, whose writes do use the index
    (measured: 1–2.5 ms on 500 as on 50,000 documents; the same update by an unindexed field 2.6 s).

    A filter of several fields is explained clause by clause when it explains as a scan whole: SecantusDB's
    find, update and delete serve it through an index on any one clause and test the others on each document
    fetched, but its explain looks only for a compound or partial index covering the fields (on 50,000
    documents, find {_id, tenant_id} 1.0 ms and {k, status} with k indexed 1.1 ms, both explained COLLSCAN,
    against 706 ms for an unindexed field). Beside a top-level operator (`$and`, `$or`) it uses no index at
    all, and rightly explains a scan. MongoDB's own explain already plans on any indexed clause.
    """
    if not await _explains_a_scan(database, example, example["filter"]):
        return False
    fields = example["filter"]
    if len(fields) < 2 or any(field.startswith("$") for field in fields):
        return True
    for field, condition in fields.items():
        if not await _explains_a_scan(database, example, {field: condition}):
            return False
    return True


async def _fresh_indexes(namespace: str, infra: Any) -> None:
    """Every collection and index the services declare, as the migration makes them (no broker)."""
    for build, settings_class in BUILDERS:
        settings = settings_class(
            namespace=namespace, rabbitmq_url=infra.rabbitmq_url, mongodb_url=infra.mongodb_url, query_log=None
        )
        service = build(settings)
        await service.migrate()
        await service.storage.close()


def _queries(records: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], set[str]]]:
    """One example per query (database without its namespace, collection, command, filter shape, sort, hint,
    comment), with every line of code that sent it."""
    queries: dict[str, tuple[dict[str, Any], set[str]]] = {}
    for record in records:
        service_database = record["database"].split("_", 1)[-1]
        key = json_util.dumps(
            [service_database, record["collection"], record["command"], shape_of(record["filter"])]
            + [record.get(field) for field in ("sort", "hint", "comment")]
        )
        queries.setdefault(key, ({**record, "database": service_database}, set()))[1].add(record["origin"])
    return queries


# A few hundred shapes, each explained once or per clause, against the database the whole session used:
# a minute or two on this machine after the full suite; the default 300 s timed out once on a slower runner.
@pytest.mark.timeout(900)
async def test_every_query_the_services_ran_is_backed_by_an_index(query_log, infra):
    # Queries the tests send themselves (through a service's client, to set up or to check) are not the services'.
    records = [record for record in read_query_log(query_log) if not record["origin"].startswith("tests/")]
    if not records:
        pytest.skip(
            "no query recorded: this test explains the queries the other tests made the services send, "
            "so run it with them (pytest tests/integration tests/e2e, or the whole suite)"
        )
    namespace = "q" + uuid.uuid4().hex[:10]
    client: AsyncMongoClient = AsyncMongoClient(infra.mongodb_url, tz_aware=True, uuidRepresentation="standard")
    try:
        await _fresh_indexes(namespace, infra)
        # SecantusDB writes a findAndModify that matched by re-reading the collection with
        # {_id, $and: [query]}, a filter no index serves: 13 ms on 500 documents, 73 ms on 5,000, 550 ms on
        # 50,000, even by _id, while explain shows the index of its find (update and delete stay at 1–2.5 ms).
        build_info = await client.admin.command("buildInfo")
        find_and_modify_scans = "secantusVersion" in build_info
        scans = []
        started, queries = time.monotonic(), _queries(records)
        for example, origins in queries.values():
            database = client[f"{namespace}_{example['database']}"]
            scan = "COLLSCAN" if await _collection_scan(database, example) else None
            if find_and_modify_scans and example["command"] == "findAndModify":
                scan = "findAndModify, which SecantusDB writes by a scan"
            if scan and not _has_reason(example.get("comment")):
                scans.append(
                    f"{example['database']}.{example['collection']} {example['command']} ({scan})"
                    f" filter={json_util.dumps(example['filter'])} sort={json_util.dumps(example.get('sort'))}"
                    + "".join(f"\n    sent by {origin}" for origin in sorted(origins))
                )
        print(f"{len(queries)} query shapes of {len(records)} records explained in {time.monotonic() - started:.1f} s")
    finally:
        for name in await client.list_database_names():
            if name.startswith(f"{namespace}_"):
                await client.drop_database(name)
        await client.close()
    assert not scans, (
        f"{len(scans)} queries read a whole collection (index them, or give the reason at the query with "
        f"comment='{SCAN_REASON}<why the collection stays small>'):\n" + "\n".join(sorted(scans))
    )
