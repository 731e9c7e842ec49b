#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint (ruff, rules in pyproject.toml), then run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export A2Q_DATA_ROOT=${A2Q_DATA_ROOT:-$(cd .. && pwd)/shared/datasets}
.venv/bin/ruff check a2q hw sim scripts tests
exec .venv/bin/python -m pytest -q -rs "$@"
