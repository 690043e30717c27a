#!/usr/bin/env bash
# The test command: install what is missing, build everything, run the whole test suite.
# Tests run on an optimised build (with testability): numeric golden checks and decoding the real
# data set are compute-bound, and debug Swift is 10-50x slower at that.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
flags=(-c release -Xswiftc -enable-testing)
swift build "${flags[@]}" --build-tests
# Passive OpenMP waiting for the oneDNN threads, as the kdad executable sets for itself (see
# Sources/kdad/ProcessEnvironment.swift): spinning OpenMP threads starve the training tests.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# The suite is XCTest only; without this, an empty Swift Testing run prints "0 tests" last.
swift test "${flags[@]}" --skip-build --disable-swift-testing "$@"
