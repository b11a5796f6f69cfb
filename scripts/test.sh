#!/usr/bin/env bash
# Set up the virtual environment with the test tools, then run ruff, shellcheck, mypy and pytest.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap - INT TERM HUP  # not a resumable driver: pytest handles its own Ctrl-C
cd "$REPO_ROOT" || exit 1
ensure_venv "$REPO_ROOT/requirements-dev.txt"
say "ruff"
"$PYTHON" -m ruff check .
say "shellcheck"
shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run
say "mypy"
"$PYTHON" -m mypy  # utils/, models/ and tools/ (pyproject.toml [tool.mypy])
say "pytest"
# a worker per core (pytest-xdist), each test file on one worker, so a file's shared reference runs are made
# once; the tests run torch on one thread each (tests/conftest.py). `-n 0` runs everything in this process.
"$PYTHON" -m pytest -q -n auto --dist loadfile "$@"
