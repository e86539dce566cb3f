"""Asking the recipient directory for addresses: the questions of every send in flight go as one request.

The questions that arrive while a request is out are asked together in the next one (see batching.py): the
directory answers a batch with one lookup. The request itself is the bus's (publipost_bus, replies.py).
"""

import asyncio
from collections import defaultdict

from publipost_bus import Bus
from publipost_contracts import AddressAnswer, AddressQuestion, RecipientsResolved, ResolveRecipients

from .batching import Coalescer


class RecipientResolver:
    def __init__(self, bus: Bus, timeout_s: float) -> None:
        self._bus = bus
        self._timeout_s = timeout_s
        self._questions = Coalescer(self._ask_many, max_batch=ResolveRecipients.MAX_QUESTIONS)
    async def resolve(
        self,
        tenant_id: str,
        correlation_id: str,
        *,
        customer_number: str | None,
        record_email: str | None,
        correspondence_type: str | None = None,
        prefer_directory: bool = False,
        document_type: str | None = None,
    ) -> AddressAnswer:
        """The directory's answer for one document; TimeoutError when none comes in time."""
        question = AddressQuestion(
            key="-",
            customer_number=customer_number,
            record_email=record_email,
            correspondence_type=correspondence_type,
            prefer_directory=prefer_directory,
            document_type=document_type,
        )
        return await self._questions((tenant_id, correlation_id, question))

    async def _ask_many(self, asked: list[tuple[str, str, AddressQuestion]]) -> list[AddressAnswer]:
        """One request per tenant and correlation among the questions, all in flight at once; each
        question keyed by its place in `asked`, so the answers come back in that order."""
        groups: dict[tuple[str, str], list[AddressQuestion]] = defaultdict(list)
        for place, (tenant_id, correlation_id, question) in enumerate(asked):
            groups[(tenant_id, correlation_id)].append(question.model_copy(update={"key": str(place)}))
        replies = await asyncio.gather(
            *(
                self._ask(ResolveRecipients(tenant_id=tenant_id, correlation_id=correlation_id, questions=questions))
                for (tenant_id, correlation_id), questions in groups.items()
            )
        )
        answers = {answer.key: answer for reply in replies for answer in reply.answers}
        return [answers[str(place)] for place in range(len(asked))]

    async def _ask(self, request: ResolveRecipients) -> RecipientsResolved:
        return await self._bus.request(request, RecipientsResolved, self._timeout_s)
