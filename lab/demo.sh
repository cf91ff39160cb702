#!/usr/bin/env bash
# `make demo`: on a fresh machine, build what is missing, bring the lab up,
# run playbooks/site.yml against it if that playbook exists, and print which
# exit requests for a few names left by. The lab stays up afterwards.
set -euo pipefail
# shellcheck source=lab/env.sh
source "$(dirname "$0")/env.sh"
srlab_lock

bash lab/lab.sh up

if [[ -f playbooks/site.yml ]]; then
  echo "demo: applying playbooks/site.yml to the lab"
  ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml
else
  echo "demo: playbooks/site.yml does not exist yet: showing the lab's own exits"
  echo "      (probe-wg: hand-made WireGuard tunnel, probe-ovpn: hand-made OpenVPN tunnel)"
fi

echo
status=0
python3 lab/exits.py || status=$?
cat <<'MSG'

The lab is still up (bash lab/lab.sh status). Look around:
  podman exec -it srlab-client bash
Take it down:
  make lab-down
MSG
exit "$status"
