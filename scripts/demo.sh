#!/usr/bin/env bash
# The main-job command: install what is missing, build kdad (release) and run the demo job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product kdad
KDAD="$(swift build -c release --show-bin-path)/kdad"
"$KDAD" --version
"$KDAD" --help
