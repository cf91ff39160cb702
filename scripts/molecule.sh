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
failed=0
for name in "${scenarios[@]}"; do
  echo "molecule: scenario $name"
  start=$SECONDS
  if molecule test --scenario-name "$name"; then
    results+=("  passed  $name ($((SECONDS - start)) s)")
  else
    results+=("  FAILED  $name ($((SECONDS - start)) s)")
    failed=1
  fi
done

echo "molecule: results"
printf '%s\n' "${results[@]}"
exit "$failed"
