"""A record of the queries a service sends, for the test that explains each one (every query index-backed).

When `PUBLIPOST_QUERY_LOG` names a file, each filtered command (find, aggregate, count, distinct, update,
delete, findAndModify) is reduced to its shape: its filter with every value replaced by its type, its sort,
hint and `comment`. The first example of each shape is appended to the file as one JSON line, with the
database, the collection and the line of Publipost code that sent it. Several processes (the local stack's
services, the test process) share the file: each line is one `os.write` to a file opened with O_APPEND,
which Linux never interleaves with another process's line.
"""

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bson import json_util
from bson.binary import UuidRepresentation
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

FILTERED_COMMANDS = frozenset({"find", "aggregate", "count", "distinct", "findAndModify", "update", "delete"})
EXAMPLE_VALUES = 3  # an `$in` of 10,000 ids is planned like one of three; lines stay short
_REPO = Path(__file__).resolve().parents[2]
_VENV = sys.prefix + os.sep
_JSON = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, tz_aware=True, uuid_representation=UuidRepresentation.STANDARD
)

# One set per process, shared by every client of the process: the integration tests build hundreds of services.
_seen: set[str] = set()
_seen_lock = threading.Lock()


def shape_of(value: Any) -> Any:
    """`value` with each scalar replaced by its type's name and each list by its distinct element shapes."""
    if isinstance(value, Mapping):
        return {key: shape_of(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        shapes: dict[str, Any] = {}
        for item in value:
            shape = shape_of(item)
            shapes.setdefault(json_util.dumps(shape), shape)
        return list(shapes.values())
    return type(value).__name__


def _shrunk(value: Any) -> Any:
    """`value` with each list of values (an `$in`'s) cut to a few; a list of conditions (an `$and`'s) stays whole."""
    if isinstance(value, Mapping):
        return {key: _shrunk(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        conditions = any(isinstance(item, Mapping) for item in value)
        return [_shrunk(item) for item in (value if conditions else value[:EXAMPLE_VALUES])]
    return value


def _aggregate_statement(pipeline: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A pipeline reads its collection through its leading `$match` and `$sort`; the later stages work on that."""
    statement: dict[str, Any] = {"filter": {}}
    stages = iter(pipeline)
    stage = next(stages, {})
    if "$match" in stage:
        statement["filter"] = stage["$match"]
        stage = next(stages, {})
    if "$sort" in stage:
        statement["sort"] = stage["$sort"]
    return statement


def statements(command_name: str, command: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Each filter the command applies to its collection, with its sort and hint when it has them."""
    if command_name == "find":
        yield {"filter": command.get("filter", {}), "sort": command.get("sort"), "hint": command.get("hint")}
    elif command_name == "aggregate":
        yield {**_aggregate_statement(command.get("pipeline", [])), "hint": command.get("hint")}
    elif command_name in ("count", "distinct"):
        yield {"filter": command.get("query", {}), "hint": command.get("hint")}
    elif command_name == "findAndModify":
        yield {"filter": command.get("query", {}), "sort": command.get("sort"), "hint": command.get("hint")}
    elif command_name == "update":
        for update in command.get("updates", []):
            yield {"filter": update.get("q", {}), "sort": update.get("sort"), "hint": update.get("hint")}
    elif command_name == "delete":
        for delete in command.get("deletes", []):
            yield {"filter": delete.get("q", {}), "hint": delete.get("hint")}


def _origin() -> str:
    """The innermost line of Publipost's own code (services, libs, tests) on the stack: who sent the query."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(str(_REPO)) and not path.startswith(_VENV) and path != __file__:
            return f"{Path(path).relative_to(_REPO)}:{frame.f_lineno} {frame.f_code.co_qualname}"
        frame = frame.f_back
    return "?"


class QueryLog(CommandListener):
    """Appends each new query shape the client sends to `path`; `namespace` is left out of the shape, so the
    same query of two tests (each in its own namespace) is written once."""

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self._prefix = f"{namespace}_"

    def started(self, event: CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        # Inserts, getMores and the like have no filter; a database-wide aggregate (aggregate: 1) no collection.
        if event.command_name not in FILTERED_COMMANDS or not isinstance(collection, str):
            return
        origin = _origin()
        for statement in statements(event.command_name, event.command):
            record = {
                "database": event.database_name,
                "collection": collection,
                "command": event.command_name,
                **{key: value for key, value in statement.items() if value is not None},
                "comment": event.command.get("comment"),
            }
            shape = {
                **record,
                "database": event.database_name.removeprefix(self._prefix),
                "filter": shape_of(statement["filter"]),
                "origin": origin,
            }
            key = json_util.dumps(shape)
            with _seen_lock:
                if key in _seen:
                    continue
                _seen.add(key)
            line = json_util.dumps({**_shrunk(record), "origin": origin}, json_options=_JSON) + "\n"
            self._append(line.encode())

    def _append(self, line: bytes) -> None:
        # Opened per line: new shapes are rare, and no descriptor outlives the hundreds of clients tests make.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def read_query_log(path: Path) -> list[dict[str, Any]]:
    """The records of a query log, BSON values (ObjectId, datetime…) restored."""
    if not path.exists():
        return []
    return [json_util.loads(line, json_options=_JSON) for line in path.read_text().splitlines() if line]
