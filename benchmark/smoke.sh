#!/usr/bin/env bash
# CI smoke of the benchmark harness: builds the load generator and drives warren and ws for a
# few seconds, so the harness keeps working. Not a measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
node benchmark/run.mjs --smoke
