#!/usr/bin/env bash
# Run every benchmark under benchmarks/ (as root); each prints its own figures.
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in benchmarks/bench_*.py; do
  echo "== $bench"
  python "$bench"
done
