# shellcheck shell=bash
# Sourced by the lab's entry points (lab/lab.sh, lab/demo.sh,
# scripts/molecule.sh): the project's venv, collection path and podman
# configuration, and the lab lock.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
export PATH="$ROOT/.venv/bin:$PATH"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/lab/containers.conf}"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$ROOT/.cache/collections}"
export ANSIBLE_FORKS="${ANSIBLE_FORKS:-16}"
# inventories/lab/hosts.yml connects with lab/plugins/connection/srlab_nsenter.py
export ANSIBLE_CONNECTION_PLUGINS="${ANSIBLE_CONNECTION_PLUGINS:-$ROOT/lab/plugins/connection}"

# The lab's container and network names are global: one user at a time.
# srlab_lock takes the machine-wide lab lock (waiting for it) unless a parent
# process already holds it; children inherit the descriptor and the mark.
srlab_lock() {
  [[ -n ${SRLAB_LOCKED:-} ]] && return 0
  exec 9>"${SRLAB_LOCK:-/run/lock/srlab.lock}"
  if ! flock --nonblock 9; then
    echo "lab: another lab user holds ${SRLAB_LOCK:-/run/lock/srlab.lock}; waiting" >&2
    flock 9
  fi
  export SRLAB_LOCKED=1
}
