#!/usr/bin/env bash
# The test command: install what is missing, build everything, run the whole test suite.
# Tests run on an optimised build (with testability): numeric golden checks and decoding the real
# data set are compute-bound, and debug Swift is 10-50x slower at that.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
flags=(-c release -Xswiftc -enable-testing)
swift build "${flags[@]}" --build-tests
swift test "${flags[@]}" --skip-build "$@"
