#!/usr/bin/env bash
# Render the self-contained report page in headless Chromium and save a screenshot,
# to look at what a reader sees: scripts/render_report.sh [paper/report.html] [OUT.png]
set -euo pipefail
html=${1:-paper/report.html}
out=${2:-paper/report_screenshot.png}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "render_report.sh: chromium is not installed (apt-get install -y chromium)" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1200,${HEIGHT:-6000} \
  --screenshot="$(realpath -m "$out")" "file://$(realpath "$html")" >/dev/null 2>&1
test -s "$out"
echo "wrote $out"
