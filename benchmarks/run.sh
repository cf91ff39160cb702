#!/usr/bin/env bash
# Run every benchmark under benchmarks/ (as root); each prints its own figures.
# bench_site_noop.py brings the lab up: the lab lock is held for the whole run.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../lab/env.sh"
srlab_lock
for bench in benchmarks/bench_*.py; do
  echo "== $bench"
  python "$bench"
done
