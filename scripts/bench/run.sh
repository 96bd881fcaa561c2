#!/usr/bin/env bash
# Runs the process-level benchmark driver (scripts/bench) against the
# binaries in RECEPTOR_BIN_DIR (make bench sets it). Extra arguments go to
# the driver, e.g. -only stream -v. The markdown report goes to
# BENCH_REPORT (default bench-report.md in the current directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${RECEPTOR_BIN_DIR:?set RECEPTOR_BIN_DIR to the directory holding the receptor binaries (make build)}"
out="${BENCH_REPORT:-bench-report.md}"
exec go run ./scripts/bench -bin "$RECEPTOR_BIN_DIR" -out "$out" "$@"
