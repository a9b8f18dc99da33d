#!/usr/bin/env bash
# Run the workflow end to end twice, each time from clean, and require identical results:
# results/manifest.tsv (path, bytes, sha256 of every artifact) and the report's bytes.
#   bash scripts/e2e.sh [PRESET]      default PRESET: workflow/presets/ci.yaml
# Env: CORES (2), E2E_DIR (scratch dir; default a new temp dir). Model weights are
# inputs, not artifacts: both runs share the repository's cache/ (fetched on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PRESET=${1:-workflow/presets/ci.yaml}
CORES=${CORES:-2}
WORK=${E2E_DIR:-$(mktemp -d)}
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$REPO/cache"

for run in 1 2; do
  dir="$WORK/run$run"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$REPO/config.yaml" "$dir/config.yaml"
  ln -s "$REPO/cache" "$dir/cache"
  start=$(date +%s)
  if ! python "$REPO/scripts/run_snakemake.py" -s "$REPO/Snakefile" -d "$dir" --cores "$CORES" \
      --configfile "$REPO/$PRESET" >"$WORK/run$run.log" 2>&1; then
    tail -40 "$WORK/run$run.log"
    echo "e2e: run $run failed; log: $WORK/run$run.log" >&2
    exit 1
  fi
  echo "e2e: run $run finished in $(( $(date +%s) - start )) s ($PRESET, $CORES cores)"
done

status=0
if cmp -s "$WORK/run1/results/manifest.tsv" "$WORK/run2/results/manifest.tsv"; then
  echo "e2e: manifests identical ($(( $(wc -l <"$WORK/run1/results/manifest.tsv") - 1 )) artifacts)"
else
  echo "e2e: manifests DIFFER:" >&2
  diff "$WORK/run1/results/manifest.tsv" "$WORK/run2/results/manifest.tsv" >&2 || true
  status=1
fi
for f in paper/report.md paper/report.html; do
  if [ -f "$WORK/run1/$f" ] && ! cmp -s "$WORK/run1/$f" "$WORK/run2/$f"; then
    echo "e2e: $f differs between the runs" >&2
    status=1
  fi
done
# Snakemake's own report: every figure PNG of the run, with its catalog caption.
smk_report="$WORK/run1/snakemake-report.html"
python "$REPO/scripts/run_snakemake.py" -s "$REPO/Snakefile" -d "$WORK/run1" \
  --configfile "$REPO/$PRESET" --report "$smk_report" >"$WORK/report.log" 2>&1
missing=0
for png in "$WORK"/run1/figures/*.png; do
  grep -q "$(basename "$png")" "$smk_report" || { echo "e2e: $png not in $smk_report" >&2; missing=1; }
done
if [ $missing = 0 ]; then
  echo "e2e: snakemake --report lists all $(ls "$WORK"/run1/figures/*.png | wc -l) figures"
else
  status=1
fi
exit $status
