#!/usr/bin/env bash
# Create .venv and install ctxscale with the pinned dependencies (CPU-only; no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c requirements/lock.txt -e ".[dev]"
echo "setup: ctxscale installed in .venv ($(.venv/bin/python --version))"
