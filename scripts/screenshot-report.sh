#!/usr/bin/env bash
# Screenshots a kdad report page with headless Chromium, to look at it or attach it to a review.
# Not part of CI. Installs the Debian package `chromium` first if it is missing (idempotent, like
# scripts/setup.sh). The page needs no network: Chromium opens it from disk.
#
# Usage: scripts/screenshot-report.sh WORK_DIR/report/index.html [OUT.png] [WIDTH] [HEIGHT]
#        (defaults: OUT = index.png beside the page, 1280 x 3000)
set -euo pipefail

page=${1:?usage: scripts/screenshot-report.sh WORK_DIR/report/index.html [OUT.png] [WIDTH] [HEIGHT]}
[ -f "$page" ] || { echo "screenshot-report: no such file: $page" >&2; exit 1; }
page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
out=${2:-"${page%.html}.png"}
width=${3:-1280}
height=${4:-3000}

if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  echo "screenshot-report: installing chromium" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

# --no-sandbox: needed when running as root (containers); the page is our own local file.
# A private profile directory, so a desktop Chromium's profile is never touched.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --window-size="$width,$height" --screenshot="$out" "file://$page" >/dev/null 2>&1
[ -s "$out" ] || { echo "screenshot-report: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
