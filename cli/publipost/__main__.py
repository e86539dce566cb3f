"""`python -m publipost`: the `publipost` command (see `--help`), e.g. `python -m publipost migrate
[--service NAME ...]` as the Kubernetes Job, docker compose and `make up` run it."""

from .app import main

if __name__ == "__main__":
    main()
