#!/usr/bin/env bash
# Every check CI runs: lint, format, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
python -m pytest -q
