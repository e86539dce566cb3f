"""The envelope every message on the bus carries, and how one event begets the next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

# Namespace for deterministic event ids: re-processing a message re-publishes
# the same ids, so downstream consumers deduplicate the copies.
_EVENT_ID_NAMESPACE = uuid.UUID("6f0f5b4e-9a53-4c4e-8f3e-2b1d8f7e0c11")

MAX_MESSAGE_BYTES = 1_000_000


def deterministic_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_EVENT_ID_NAMESPACE, "/".join(str(p) for p in parts))


class Event(BaseModel):
    """Common envelope. Subclasses add the body fields and pin `type`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routing_key: ClassVar[str]
    SCHEMA_VERSIONS: ClassVar[frozenset[int]] = frozenset({1})
    """The `schema_version`s this model reads. A consumer dead-letters any other version at once, before
    reading the body as this model: a version it does not know may mean other things by the same fields."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tenant_id: str = Field(min_length=1, max_length=64)
    correlation_id: str = Field(min_length=1, max_length=128)
    causation_id: str | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        if field is not None and isinstance(field.default, str):
            cls.routing_key = field.default

    @classmethod
    def caused_by(
        cls, cause: Event, *, key: object | None = None, event_id: uuid.UUID | None = None, **body: Any
    ) -> Self:
        """A follow-up event in the same tenant and correlation.

        With `key`, the event id is derived from the cause and the key, so a
        handler that runs twice for the same cause publishes the same event
        twice, which consumers recognise as one. An explicit `event_id` serves
        events that must be unique whatever caused them (a mailing completes once).
        """
        if event_id is None:
            event_id = deterministic_id(cause.event_id, cls.routing_key, key) if key is not None else uuid.uuid4()
        return cls(
            event_id=event_id,
            tenant_id=cause.tenant_id,
            correlation_id=cause.correlation_id,
            causation_id=str(cause.event_id),
            **body,
        )
