#!/usr/bin/env bash
# Look at a pytest-html report the way a reader does: Chromium, headless, one PNG.
#   scripts/screenshot_report.sh report.html [out.png] [WIDTHxHEIGHT]
# With no report given, it makes one: the hobannu example on the offline simulator, teacher and student.
# Every row is shown expanded (`?collapsed=none`), passed ones included, so the details can be checked.
# Needs Debian's chromium package (apt-get install -y chromium; fonts-noto-cjk for the Japanese example);
# the test suite does not.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
report="${1:-}"
png="${2:-/tmp/report.png}"
size="${3:-1400x1800}"
if [[ -z "$report" ]]; then
    report="$(mktemp -d)/report.html"
    (cd "$repo" && "${PYTHON:-python}" -m pytest examples/hobannu --distill-sim --model gpt-4o --model gpt-4o-mini \
        --html "$report" -q >/dev/null) || true
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" --screenshot="$png" \
    --window-size="${size/x/,}" "file://$(realpath "$report")?collapsed=none" 2>/dev/null
echo "$png"
