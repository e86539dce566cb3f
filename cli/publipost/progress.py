"""Live progress of a mailing (rendering, converting to PDF, ready) and of a dispatch (sending), as the
services count it: one bar per stage, followed until the work settles."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .api import ApiError

# merge's MailingStatus: past these, nothing moves until a person (or a dispatch) acts.
MAILING_SETTLED = ("ready", "pending_validation", "failed", "rejected", "replaced")
MAILING_WORKING = ("rendering", "converting")
DISPATCH_SETTLED = ("completed", "refused", "paused")
RECORDING_WINDOW_S = 60.0


@dataclass(frozen=True)
class Stage:
    label: str
    done: int
    total: int


def mailing_stages(view: dict[str, Any]) -> list[Stage]:
    """The stages of a mailing (merge's GET /mailings/{id}): each bar full once the mailing is past it."""
    status = view["status"]
    expected = view.get("expected") or view.get("documents") or 0
    settled = status not in MAILING_WORKING
    rendered = expected if settled or status != "rendering" else min(view.get("rendered", 0), expected)
    # Rendering leaves out the records that failed: what converting waits for is the documents made.
    to_convert = (view.get("documents") or expected) if status != "rendering" else expected
    converted = to_convert if settled else min(view.get("converted") or 0, to_convert)
    converting = "converting to PDF" if view.get("output", "pdf") == "pdf" else "counting pages"
    return [
        Stage("rendering", rendered, expected),
        Stage(converting, converted, to_convert),
        Stage(status.replace("_", " ") if settled else "ready", int(settled), 1),
    ]


def dispatch_stages(view: dict[str, Any]) -> list[Stage]:
    """A dispatch (dispatch's GET /dispatches/{id}): documents with a final outcome, of all it sends."""
    total = view.get("total") or 0
    final = max(total - view.get("queued", 0) - view.get("sending", 0), 0) if view["status"] != "fanning_out" else 0
    return [Stage(f"sending ({view['status'].replace('_', ' ')})", final, total)]


def once_recorded(
    fetch: Callable[[], dict[str, Any]], pending: dict[str, Any], window_s: float = RECORDING_WINDOW_S
) -> Callable[[], dict[str, Any]]:
    """`fetch` of work just accepted (202) that its service records when its consumer takes the request: a 404
    within `window_s` is `pending`, not an unknown id."""
    recorded_by = time.monotonic() + window_s

    def fetched() -> dict[str, Any]:
        try:
            return fetch()
        except ApiError as refusal:
            if refusal.status != 404 or time.monotonic() > recorded_by:
                raise
            return pending

    return fetched


def follow(
    fetch: Callable[[], dict[str, Any]],
    stages: Callable[[dict[str, Any]], list[Stage]],
    settled: Callable[[dict[str, Any]], bool],
    console: Console,
    poll_s: float,
) -> dict[str, Any]:
    """Ask `fetch` every `poll_s` seconds, drawing the stages, until `settled`; returns the last view."""
    columns = (TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bars: list[TaskID] = []
        while True:
            view = fetch()
            for n, stage in enumerate(stages(view)):
                if n == len(bars):
                    bars.append(progress.add_task(stage.label, total=stage.total))
                progress.update(bars[n], description=stage.label, completed=stage.done, total=stage.total)
            if settled(view):
                return view
            time.sleep(poll_s)
