"""What the screens show and ask, decided without I/O: progress of a mailing, pages, the documents a send
takes, where a sign-in may return to."""

import math
from dataclasses import dataclass
from typing import Any

IN_PROGRESS = frozenset({"rendering", "converting"})
DISPATCH_OVER = frozenset({"completed", "refused"})
# Tick boxes are offered for one page of merge's documents list (its largest): past it, a send takes them all.
CHOOSABLE_DOCUMENTS = 1000


@dataclass(frozen=True)
class Progress:
    done: int
    total: int

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else min(100, round(100 * self.done / self.total))


def mailing_progress(mailing: dict[str, Any]) -> Progress | None:
    """How far a mailing in progress is: records rendered, then PDFs converted; None once it is settled."""
    if mailing["status"] == "rendering":
        return Progress(mailing["rendered"] + mailing["failed"], mailing["expected"] or mailing["documents"])
    if mailing["status"] == "converting":
        return Progress(mailing.get("converted") or 0, mailing["documents"])
    return None


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def is_not_sent(mailing: dict[str, Any]) -> bool:
    """The "not sent by e-mail" half of a dispatched mailing: its clients' addresses are to be fixed."""
    return (mailing.get("regrouped_from") or {}).get("outcome") == "not_sent"


def can_send(mailing: dict[str, Any]) -> bool:
    return bool(mailing.get("sendable")) and mailing.get("output") == "pdf"


class NothingChosen(ValueError):
    pass


def chosen_documents(offered: list[str], ticked: list[str]) -> list[str] | None:
    """The documents a send takes: None for all of the mailing (nothing was offered to untick, or every
    offered one is ticked), else the ticked ones, in the offered order."""
    if not offered:
        return None
    kept = set(ticked)
    chosen = [document_id for document_id in offered if document_id in kept]
    if not chosen:
        raise NothingChosen("no document is ticked")
    return None if len(chosen) == len(offered) else chosen


def dispatch_status_counts(dispatch: dict[str, Any]) -> dict[str, int]:
    """What the dispatch page shows: sent, not sent (failed and uncertain), still waiting."""
    sent = dispatch["sent"]
    failed = dispatch["failed"] + dispatch.get("uncertain", 0)
    return {
        "sent": sent,
        "failed": failed,
        "pending": max(0, dispatch["total"] - sent - failed),
        "total": dispatch["total"],
    }


def safe_next(path: str | None) -> str:
    """Where a sign-in returns: a path of the console only, never another site (`//evil.test`, `https://…`)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/mailings"
    return path
