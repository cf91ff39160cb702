#!/usr/bin/env bash
# `make demo`: on a fresh machine, build what is missing, bring the lab up, run
# playbooks/site.yml against inventories/lab (the full chain: a gateway split by
# range into a direct exit and an OpenVPN provider, two split-tunnel clients),
# and print which exit requests for a few names left by, next to the exit each
# should take (lab_demo in inventories/lab/hosts.yml). Exits with status 1 if a
# request took another exit. The lab stays up afterwards.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "$0")/env.sh"
srlab_lock

bash lab/lab.sh up

echo "demo: applying playbooks/site.yml to the lab (inventories/lab)"
ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml

echo
status=0
python3 lab/exits.py || status=$?
cat <<'MSG'

Rows: a request for NAME from FROM HOST; EXIT is where it left (direct/router-*:
the host's own site router, gateway: the gateway's uplink, provider: the OpenVPN
provider behind the gateway, vpn-endpoint: the lab's own WireGuard endpoint).
client sits in the gateway's provider range, client2 in its direct range; their
lists are in inventories/lab/group_vars/clients.yml and host_vars/.

The lab is still up (bash lab/lab.sh status). Look around (first: source lab/env.sh):
  podman exec -it srlab-client bash
  ansible-playbook -i inventories/lab/hosts.yml playbooks/status.yml
  ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml --check --diff
Take it down:
  make lab-down
MSG
exit "$status"
