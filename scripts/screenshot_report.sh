#!/usr/bin/env bash
# Render an untwine report headless with Debian's chromium and save a PNG screenshot.
#   scripts/screenshot_report.sh REPORT.html [OUT.png] [HEIGHT]
# Installs chromium with apt-get if it is missing (needs root and the Debian archive).
set -euo pipefail
report=${1:?usage: scripts/screenshot_report.sh REPORT.html [OUT.png] [HEIGHT]}
out=${2:-${report%.html}.png}
height=${3:-4000}
[ -f "$report" ] || { echo "no such report: $report" >&2; exit 2; }
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium not found; installing it with apt-get" >&2
  apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --screenshot="$out_abs" \
  --window-size="1280,$height" "$url" 2>/dev/null
echo "screenshot: $out_abs"
