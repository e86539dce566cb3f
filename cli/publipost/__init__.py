"""The `publipost` command (`python -m publipost`, or `.venv/bin/publipost` after `make setup`): the product's
commands for the people who use and run it (see `--help`, and app.py)."""
