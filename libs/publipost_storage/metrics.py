"""Every command a service sends to the database, counted by name on its /metrics.

A round trip to the database is the unit its cost is paid in (SecantusDB's per-request cost bounds
dispatch), so the count is always on: one dictionary lookup and one increment per command.
"""

from prometheus_client import Counter
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

DB_COMMANDS = Counter(
    "publipost_db_commands_total",
    "Commands sent to the database (each one a round trip), by command name (find, update, getMore…).",
    ["command"],
)


class CommandCounter(CommandListener):
    """Counts each command as it starts; pymongo calls it for every command of the client, getMore included."""

    def __init__(self) -> None:
        self._by_name: dict[str, Counter] = {}  # the labelled child, looked up once per name

    def started(self, event: CommandStartedEvent) -> None:
        child = self._by_name.get(event.command_name)
        if child is None:
            child = self._by_name[event.command_name] = DB_COMMANDS.labels(command=event.command_name)
        child.inc()

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


COMMAND_COUNTER = CommandCounter()
