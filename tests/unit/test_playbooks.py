"""The fleet entry points against both inventories, without touching any host.

- inventories/example and inventories/lab parse (`ansible-inventory --graph`, `--list`)
  and have the groups the playbooks target;
- site.yml, playbooks/{site,status,revert}.yml pass `--syntax-check` with both;
- the lab inventory's cross references resolve: every client is a peer of the gateway, in
  the range its host_vars put it, and a client without a published key is given the
  refused placeholder, never an empty key (which the gateway role reads as "make one").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
INVENTORIES = {"example": ROOT / "inventories" / "example", "lab": ROOT / "inventories" / "lab" / "hosts.yml"}
PLAYBOOKS = ["site.yml", "playbooks/site.yml", "playbooks/status.yml", "playbooks/revert.yml"]


def run(*cmd: str) -> str:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("inventory", sorted(INVENTORIES))
def test_inventory_has_the_groups_the_playbooks_target(inventory):
    graph = run("ansible-inventory", "-i", str(INVENTORIES[inventory]), "--graph")
    assert "@gateways:" in graph and "@clients:" in graph
    listing = json.loads(run("ansible-inventory", "-i", str(INVENTORIES[inventory]), "--list"))
    assert listing["gateways"]["hosts"]
    assert listing["clients"].get("hosts") or listing["clients"].get("children")


@pytest.mark.parametrize("playbook", PLAYBOOKS)
@pytest.mark.parametrize("inventory", sorted(INVENTORIES))
def test_playbook_syntax(inventory, playbook):
    run("ansible-playbook", "-i", str(INVENTORIES[inventory]), playbook, "--syntax-check")


def test_lab_cross_references_resolve(tmp_path):
    """Template the lab's peer list and the clients' tunnels as the roles will see them."""
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        """
- hosts: gateway
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        splitroute_gateway_public_key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
    - ansible.builtin.set_fact:
        splitroute_client_public_keys: {gw: BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}
      delegate_to: client
      delegate_facts: true
- hosts: gateways:clients
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "{{ (splitroute_gateway_peers if inventory_hostname in groups['gateways']
                  else splitroute_client_tunnels) | to_json }}"
"""
    )
    # the lab's connection plugin, as the Makefile and lab/env.sh find it (nothing connects here)
    plugins = str(ROOT / "lab" / "plugins" / "connection")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    env["ANSIBLE_CONNECTION_PLUGINS"] = plugins
    cmd = ["ansible-playbook", "-i", str(INVENTORIES["lab"]), str(playbook), "-c", "local"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    results = out["plays"][1]["tasks"][0]["hosts"]
    peers = {p["name"]: p for p in json.loads(results["gateway"]["msg"])}
    assert set(peers) == {"client", "client2"}
    assert peers["client"]["public_key"] == "BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    # client2 published nothing: the placeholder the role refuses, not an empty key
    assert peers["client2"]["public_key"] == "unknown"
    assert peers["client"]["address"] == "10.4.0.130" and peers["client2"]["address"] == "10.4.0.10"
    for name in ("client", "client2"):
        tunnels = json.loads(results[name]["msg"])
        assert tunnels[0]["peer"]["public_key"] == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", name
        assert tunnels[0]["address"] == [peers[name]["address"] + "/32", peers[name]["address6"] + "/128"]
