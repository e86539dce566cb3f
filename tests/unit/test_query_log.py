"""The query log keeps one example of each query shape a service sends, for the test that explains them."""

import uuid
from types import SimpleNamespace

from publipost_storage.query_log import QueryLog, read_query_log


def sent(log: QueryLog, database: str, command: dict) -> None:
    """What pymongo hands a listener as a command starts (the fields the log reads)."""
    name = next(iter(command))
    log.started(SimpleNamespace(command_name=name, command=command, database_name=database))


def test_the_same_query_with_other_values_is_written_once(tmp_path):
    log, collection = QueryLog(tmp_path / "q.jsonl", "t1"), uuid.uuid4().hex

    sent(log, "t1_merge", {"find": collection, "filter": {"tenant_id": "acme", "status": "ready"}})
    sent(log, "t1_merge", {"find": collection, "filter": {"tenant_id": "other", "status": "sent"}})
    sent(log, "t1_merge", {"find": collection, "filter": {"tenant_id": "acme"}, "sort": {"created_at": -1}})

    records = read_query_log(tmp_path / "q.jsonl")
    assert [(r["filter"], r.get("sort")) for r in records] == [
        ({"tenant_id": "acme", "status": "ready"}, None),
        ({"tenant_id": "acme"}, {"created_at": -1}),
    ]
    assert records[0]["database"] == "t1_merge" and records[0]["collection"] == collection


def test_a_query_of_another_namespace_is_the_same_query(tmp_path):
    collection = uuid.uuid4().hex
    sent(QueryLog(tmp_path / "q.jsonl", "t1"), "t1_merge", {"find": collection, "filter": {"_id": "a"}})
    sent(QueryLog(tmp_path / "q.jsonl", "t2"), "t2_merge", {"find": collection, "filter": {"_id": "b"}})

    assert len(read_query_log(tmp_path / "q.jsonl")) == 1


def test_each_statement_of_an_update_is_a_query_and_long_lists_of_values_are_cut_short(tmp_path):
    log, collection = QueryLog(tmp_path / "q.jsonl", "t1"), uuid.uuid4().hex
    ids = [f"d{n}" for n in range(100)]

    sent(
        log,
        "t1_dispatch",
        {
            "update": collection,
            "updates": [
                {"q": {"_id": {"$in": ids}}, "u": {"$set": {"x": 1}}},
                {"q": {"$and": [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]}, "u": {}},
            ],
            "comment": "collection scan: a test",
        },
    )

    records = read_query_log(tmp_path / "q.jsonl")
    assert [r["filter"] for r in records] == [
        {"_id": {"$in": ["d0", "d1", "d2"]}},
        {"$and": [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]},
    ]
    assert {r["comment"] for r in records} == {"collection scan: a test"}


def test_an_aggregate_is_its_leading_match_and_sort_and_an_insert_is_no_query(tmp_path):
    log, collection = QueryLog(tmp_path / "q.jsonl", "t1"), uuid.uuid4().hex

    pipeline = [{"$match": {"tenant_id": "acme"}}, {"$sort": {"at": 1}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]
    sent(log, "t1_merge", {"aggregate": collection, "pipeline": pipeline})
    sent(log, "t1_merge", {"insert": collection, "documents": [{"_id": 1}]})

    [record] = read_query_log(tmp_path / "q.jsonl")
    assert (record["command"], record["filter"], record["sort"]) == ("aggregate", {"tenant_id": "acme"}, {"at": 1})


def test_each_query_names_the_line_that_sent_it(tmp_path):
    log = QueryLog(tmp_path / "q.jsonl", "t1")

    sent(log, "t1_merge", {"find": uuid.uuid4().hex, "filter": {}})

    [record] = read_query_log(tmp_path / "q.jsonl")
    assert record["origin"].startswith("tests/unit/test_query_log.py:") and record["origin"].endswith(" sent")
