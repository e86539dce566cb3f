"""`python -m publipost`: the product's commands for the people who run it (see `--help`)."""
