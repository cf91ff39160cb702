#!/usr/bin/env bash
# `make molecule`: run `molecule test` for every scenario directory under
# molecule/ that has a molecule.yml, the lab scenario first, one at a time
# (they share the lab's container and network names). Every scenario runs
# even if an earlier one failed; the exit status is 1 if any failed.
#   bash scripts/molecule.sh            all scenarios
#   bash scripts/molecule.sh lab other  just these, in this order
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/../lab/env.sh"
srlab_lock

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  [[ -f molecule/lab/molecule.yml ]] && scenarios+=(lab)
  for file in molecule/*/molecule.yml; do
    [[ -e $file ]] || continue
    name="$(basename "$(dirname "$file")")"
    [[ $name == lab ]] || scenarios+=("$name")
  done
fi
if ((${#scenarios[@]} == 0)); then
  echo "molecule: no scenario under molecule/" >&2
  exit 1
fi

results=()
failed=()
mkdir -p .cache
for name in "${scenarios[@]}"; do
  echo "molecule: scenario $name"
  start=$SECONDS
  # each scenario's output also goes to .cache/molecule-NAME.log, for the summary below
  if molecule test --scenario-name "$name" 2>&1 | tee ".cache/molecule-$name.log"; then
    results+=("  passed  $name ($((SECONDS - start)) s)")
  else
    results+=("  FAILED  $name ($((SECONDS - start)) s)")
    failed+=("$name")
  fi
done

# What failed, last: a CI log that keeps only its tail still says which step and test.
for name in "${failed[@]}"; do
  echo "molecule: what failed in $name (.cache/molecule-$name.log)"
  sed 's/\x1b\[[0-9;]*m//g' ".cache/molecule-$name.log" |
    grep -a -E 'FAILED|ERROR |fatal: |Error: |^[^a-z]*E  |Executed: Failed|AssertionError' | tail -n 60 || true
done
echo "molecule: results"
printf '%s\n' "${results[@]}"
((${#failed[@]} == 0))
