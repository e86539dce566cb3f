# Publipost: the commands a newcomer and CI need. Each target sets up what it needs first.
PY := .venv/bin/python
UV := .venv/bin/uv

.PHONY: setup up down status logs dlq demo test test-fast test-faults lint lock asyncapi contracts bench-merge bench-render bench-import bench-dispatch bench-history bench-upload bench-e2e bench-aged bench-parity

setup:
	@bash deploy/setup.sh

up: setup
	@$(PY) -m publipost_localstack up

down:
	@$(PY) -m publipost_localstack down

status:
	@$(PY) -m publipost_localstack status

logs:
	@$(PY) -m publipost_localstack logs $(SERVICE)

# Dead-letter queues (README, "Dead letters"): make dlq ARGS="list", ARGS="show <queue>", ARGS="replay <queue> --all"...
dlq:
	@$(PY) -m publipost_bus.dlq $(ARGS)

demo: up
	@$(PY) -m publipost_localstack.demo

test: setup
	@$(PY) -m pytest

test-fast: setup
	@$(PY) -m pytest -m "not slow"

# A 1,000-record mailing per fault scenario, each on a stack of its own; prints the table the README keeps
# (README, "Faults"). make test runs the same scenarios with 200 records.
test-faults: setup
	@PUBLIPOST_FAULTS_RECORDS=1000 $(PY) -m pytest -m faults

# Re-pin after editing requirements*.in (see README, "Dependencies").
lock: setup
	@$(UV) pip compile -q --python-version 3.11 requirements.in -o requirements.lock
	@$(UV) pip compile -q --python-version 3.11 requirements-dev.in -o requirements-dev.lock
	@bash deploy/setup.sh

asyncapi: setup
	@$(PY) contracts/generate_asyncapi.py

# The installable contracts package (contracts/CHANGELOG.md): a wheel and an sdist in dist/.
contracts: setup
	@$(UV) build --quiet contracts --out-dir dist
	@ls dist/publipost_contracts-*

lint: setup
	@.venv/bin/ruff check .

# Benchmarks (bench/README.md): figures, then one JSON line with the ratio against the reference.
bench-merge: setup
	@$(PY) bench/bench_merge.py

bench-render: setup
	@$(PY) bench/bench_render.py

bench-import: setup
	@$(PY) bench/bench_import.py

bench-dispatch: setup
	@$(PY) bench/bench_dispatch.py

bench-history: setup
	@$(PY) bench/bench_history.py

bench-upload: setup
	@$(PY) bench/bench_upload.py

bench-e2e: setup
	@$(PY) bench/bench_e2e.py

bench-aged: setup
	@$(PY) bench/bench_aged.py

bench-parity: setup
	@$(PY) bench/library_parity.py
