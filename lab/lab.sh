#!/usr/bin/env bash
# The lab on this machine: podman hosts with systemd, internal networks.
#   bash lab/lab.sh up      build the image if needed, create and configure
#                           everything in inventories/lab/hosts.yml (idempotent)
#   bash lab/lab.sh down    remove every lab container and network (idempotent)
#   bash lab/lab.sh status  list the lab's containers and networks
# `make lab-up`, `make lab-down` and `make demo` call this.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/env.sh"
srlab_lock
export ANSIBLE_CALLBACK_RESULT_FORMAT="${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml}"
INVENTORY="$ROOT/inventories/lab/hosts.yml"
LABEL=srlab.lab=1

lab_up() {
  local start=$SECONDS
  ansible-playbook -i "$INVENTORY" "$ROOT/lab/playbooks/up.yml"
  echo "lab: up in $((SECONDS - start)) s; log in with: podman exec -it srlab-client bash"
}

lab_down() {
  local containers networks
  mapfile -t containers < <(podman ps --all --filter "label=$LABEL" --format '{{.Names}}')
  if ((${#containers[@]})); then
    podman rm --force --time 0 --ignore "${containers[@]}" >/dev/null
    echo "lab: removed containers: ${containers[*]}"
  fi
  mapfile -t networks < <(podman network ls --filter "label=$LABEL" --format '{{.Name}}')
  if ((${#networks[@]})); then
    podman network rm --force "${networks[@]}" >/dev/null
    echo "lab: removed networks: ${networks[*]}"
  fi
  echo "lab: down"
}

lab_status() {
  podman ps --all --filter "label=$LABEL" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}'
  echo
  podman network ls --filter "label=$LABEL" --format 'table {{.Name}}\t{{.Driver}}'
}

case "${1:-}" in
  up) lab_up ;;
  down) lab_down ;;
  status) lab_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
