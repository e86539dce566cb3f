"""`python -m publipost_localstack up|down|status|restart|logs|token [name]`: the local stack, no Docker needed.

`token [user]` prints a bearer token of a development user (admin, operator, viewer, integrator; admin by
default) from the stack's development issuer, for curl: -H "Authorization: Bearer $(… token admin)"."""

import argparse
import sys

from . import dev_issuer
from .stack import CONSOLE, SERVICES, Stack, StackConfig


def main() -> int:
    parser = argparse.ArgumentParser(prog="publipost_localstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "restart", "logs", "token"])
    parser.add_argument(
        "name",
        nargs="?",
        help="a service (restart, logs), secantusdb / smtp-capture / dev-issuer (logs), a user (token)",
    )
    args = parser.parse_args()
    stack = Stack(StackConfig.from_env())
    if args.command == "up":
        try:
            stack.up()
        except (RuntimeError, TimeoutError) as exc:
            print(f"the stack did not start: {exc}", file=sys.stderr)
            return 1
        print(f"logs and pid files: {stack.config.run_dir}")
    elif args.command == "down":
        stack.down()
    elif args.command == "status":
        return 0 if stack.status() else 1
    elif args.command == "restart":
        names = [args.name] if args.name else [*SERVICES, *((CONSOLE,) if stack.config.console else ())]
        for name in names:
            stack.stop_service(name)
            stack.start_service(name)
        for name in names:
            stack.wait_ready(name, 180)
            print(f"{name} restarted")
    elif args.command == "token":
        config = stack.config
        print(dev_issuer.user_token(config.issuer_url, config.issuer_dir, args.name or "admin"))
    elif args.command == "logs":
        print(stack.log_tail(args.name or "merge", lines=200))
    return 0


if __name__ == "__main__":
    sys.exit(main())
