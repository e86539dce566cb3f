"""`python -m publipost migrate [--service NAME ...]`: the stored schema of every service (or those named)
brought to this release's; prints each service's version before and after and the upgrades it ran."""

import argparse
import asyncio
import sys

from publipost_logging import configure_logging

from .migrate import SERVICES, migrate


def main() -> int:
    parser = argparse.ArgumentParser(prog="publipost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrating = commands.add_parser("migrate", help="create indexes and run data upgrades, recorded")
    migrating.add_argument("--service", action="append", choices=SERVICES, help="only this service (repeatable)")
    args = parser.parse_args()
    configure_logging("migrate", "WARNING")
    done = asyncio.run(migrate(args.service or SERVICES))
    for name, migrated in done.items():
        ran = f", ran {', '.join(migrated.upgrades)}" if migrated.upgrades else ""
        print(f"{name:<20} schema {migrated.before} → {migrated.after}{ran}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
