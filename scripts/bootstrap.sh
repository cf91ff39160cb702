#!/usr/bin/env bash
# Install what `make test` and `make demo` need on a fresh Debian 12 machine:
# Debian packages (no recommends) and a pinned virtual environment in .venv.
# A second run installs nothing: each step is skipped when its stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
mkdir -p .cache

# The Debian packages: the first word of each line of scripts/host-packages.txt, which also says
# why each is needed (tests/unit/test_host_commands.py checks it against what the project runs).
mapfile -t APT_PACKAGES < <(sed -e 's/#.*//' scripts/host-packages.txt | awk 'NF { print $1 }')
if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${APT_PACKAGES[@]}"
  exit 0
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv is built on Debian's python3 so that modules run under the venv
# interpreter see the same libnftables binding (python3-nftables) as a
# managed Debian host. Only that one package is exposed from the system.
want="$(sha256sum requirements-dev.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [[ ! -x $VENV/bin/python || "$(cat "$VENV/.stamp" 2>/dev/null)" != "$want" ]]; then
  echo "bootstrap: building $VENV from requirements-dev.txt"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 \
    | { grep -v '^WARNING: Location' || true; }
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$VENV/debian-nftables"
  ln -sfn /usr/lib/python3/dist-packages/nftables "$VENV/debian-nftables/nftables"
  echo "$(readlink -f "$VENV")/debian-nftables" > "$site/debian-nftables.pth"
  echo "$want" > "$VENV/.stamp"
fi

# The collection as Ansible expects to find it: ansible_collections/NS/NAME.
mkdir -p .cache/collections/ansible_collections/splitroute
ln -sfn "$(pwd)" .cache/collections/ansible_collections/splitroute/vpn
