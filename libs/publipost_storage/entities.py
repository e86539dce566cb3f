"""The one mapping between a domain entity (a dataclass) and its stored document.

Entities are plain dataclasses in each service's domain, with the rules as methods; a repository turns
them into documents and back through an `Entities` mapper, so the field names, the defaults that let a
document written by an older version load, and the conversions (enums, nested entities, datetimes) are
declared once, on the dataclass. `id` is stored as MongoDB's `_id`; fields a document carries that the
entity does not declare are ignored on load (a newer version's additions, kept by updates with `$set`).
"""

from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


class Entities(Generic[T]):
    def __init__(self, entity_type: type[T]) -> None:
        self.entity_type = entity_type
        self._adapter: TypeAdapter[T] = TypeAdapter(entity_type)

    def load(self, document: dict[str, Any]) -> T:
        fields = dict(document)
        if "_id" in fields:
            fields["id"] = fields.pop("_id")
        return self._adapter.validate_python(fields)

    def load_or_none(self, document: dict[str, Any] | None) -> T | None:
        return None if document is None else self.load(document)

    def dump(self, entity: T) -> dict[str, Any]:
        document: dict[str, Any] = self._adapter.dump_python(entity)
        if "id" in document:
            document["_id"] = document.pop("id")
        return document

    def dump_fields(self, entity: T, *names: str) -> dict[str, Any]:
        """Only the named fields, as stored: the `$set` of a change that touches a few of them."""
        document = self.dump(entity)
        return {name: document["_id" if name == "id" else name] for name in names}
