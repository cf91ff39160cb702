#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection laid out as ansible_collections/splitroute/vpn
# (ansible-test needs that path). The sanity tools (pylint, voluptuous, ... at the versions
# ansible-test pins) get a venv of their own: ansible-test's --requirements would bootstrap pip
# from a host this machine cannot reach, and the pins would downgrade .venv's linters.
set -euo pipefail
cd "$(dirname "$0")/.."
SVENV=.cache/sanity-venv
core="$(grep -E '^ansible-core==' requirements-dev.txt)"
reqdir="$(.venv/bin/python -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')"
want="$(cat requirements-dev.txt "$reqdir"/sanity.*.txt | sha256sum | cut -c1-16)"
if [[ ! -x $SVENV/bin/ansible-test || "$(cat "$SVENV/.stamp" 2>/dev/null)" != "$want" ]]; then
  echo "sanity: building $SVENV"
  rm -rf "$SVENV"
  /usr/bin/python3 -m venv "$SVENV"
  # one resolver run: ansible-test's pins for each sanity test, ansible-core as .venv has it
  reqs=()
  for f in "$reqdir"/sanity.*.txt; do
    case $f in *pslint*) ;; *) reqs+=(-r "$f") ;; esac
  done
  "$SVENV/bin/pip" install -q --disable-pip-version-check "$core" "${reqs[@]}" 2>&1 \
    | { grep -v '^WARNING: Location' || true; }
  echo "$want" > "$SVENV/.stamp"
fi
PATH="$(pwd)/$SVENV/bin:$PATH"
export PATH

# ansible-test bootstraps pip in each test's venv with a get-pip.py it downloads from a host
# this machine cannot reach. Its documented way out is a script placed in its cache; ours
# installs pip with ensurepip and the rest from PyPI.
pipver="$(grep -oE "pip='[0-9.]+'" "$SVENV"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | grep -oE '[0-9.]+')"
getpip="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
if [[ ! -f $getpip ]]; then
  mkdir -p "$(dirname "$getpip")"
  cp scripts/get_pip_standin.py "$getpip"
fi
dest=.cache/sanity/ansible_collections/splitroute/vpn
rm -rf "$dest"
mkdir -p "$dest"
# the files git would ship (tracked or new, not ignored)
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [[ -e $f ]] || continue
  mkdir -p "$dest/$(dirname "$f")"
  cp -a "$f" "$dest/$f"
done
cd "$dest"
# a repository of its own, so ansible-test lists these files (the outer one ignores .cache)
git init -q . && git add -A
ansible-test sanity --local --python 3.11 --color no "$@"
