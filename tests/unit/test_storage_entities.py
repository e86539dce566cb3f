from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from publipost_storage import Entities


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Part:
    blob_id: str
    pages: int


@dataclass
class Thing:
    id: str
    colour: Colour
    made_at: datetime
    parts: list[Part] = field(default_factory=list)
    note: str | None = None


THINGS = Entities(Thing)


def test_an_entity_goes_to_its_document_and_back() -> None:
    thing = Thing(id="t1", colour=Colour.RED, made_at=datetime(2026, 1, 2, tzinfo=UTC), parts=[Part("b", 3)])

    document = THINGS.dump(thing)

    assert document == {
        "_id": "t1",
        "colour": "red",
        "made_at": datetime(2026, 1, 2, tzinfo=UTC),
        "parts": [{"blob_id": "b", "pages": 3}],
        "note": None,
    }
    assert THINGS.load(document) == thing


def test_a_document_of_an_older_version_loads_with_the_defaults_and_ignores_what_it_does_not_know() -> None:
    loaded = THINGS.load({"_id": "t2", "colour": "blue", "made_at": datetime(2026, 1, 2), "retired_field": 1})

    assert loaded.colour is Colour.BLUE
    assert loaded.parts == [] and loaded.note is None


def test_dump_fields_gives_only_the_named_fields_as_stored() -> None:
    thing = Thing(id="t3", colour=Colour.BLUE, made_at=datetime(2026, 1, 2), parts=[Part("b", 1)])

    assert THINGS.dump_fields(thing, "colour", "parts") == {"colour": "blue", "parts": [{"blob_id": "b", "pages": 1}]}
