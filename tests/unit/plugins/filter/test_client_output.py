"""No key of the client role reaches Ansible's output, at any verbosity.

At -v Ansible prints a task's result and every loop's whole `item` (loop_control.label only shortens the
line before it). The plan (client_plan) holds no key, only flags; the keys reach the tasks that write them
through client_secrets, in no_log tasks. Proven two ways:

- the role's validation and its key and WireGuard tasks (validate.yml, wireguard.yml, which imports
  keys.yml) run at -vvv with --check --diff against localhost, with keys in the inventory that appear
  nowhere else; none of them is in the output;
- every loop in the role's tasks and handlers goes over something that holds no key, or is no_log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "client"
COLLECTIONS = ROOT / ".cache" / "collections"
PUBLIC = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
PRIVATE = "sGpr1vATEk3yaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA="
PRESHARED = "cPr3SHAREDk3ybbbbbbbbbbbbbbbbbbbbbbbbbbbbbA="
SECRETS = (PRIVATE, PRESHARED)
# names no host has: check mode writes nothing, and the one real command (wg pubkey) finds no key file
TUNNELS = [
    {
        "name": "srtestkey0",
        "address": ["10.99.0.10/32", "fd10:99::10/128"],
        "private_key": PRIVATE,
        "peer": {"public_key": PUBLIC, "endpoint": "198.51.100.20:51820", "preshared_key": PRESHARED},
        "dns": ["10.99.0.1"],
        "domains": ["example.com"],
    },
    {
        "name": "srtestkey1",
        "address": ["10.98.0.10/32"],
        "peer": {"public_key": PUBLIC, "endpoint": "198.51.100.20:51821"},
    },
]


def run_play(tmp_path, play, *args):
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                    }
                }
            }
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_DISPLAY_ARGS_TO_STDOUT="1",
    )
    return subprocess.run(
        ["ansible-playbook", "-i", "hosts.yml", "play.yml", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_the_roles_key_tasks_print_no_key_at_vvv(tmp_path):
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
    play = [
        {
            "name": "The client role's key handling, in check mode",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "splitroute_client_tunnels": TUNNELS,
                "splitroute_client_domains__t": {"srtestkey1": []},
                # facts.yml's reading of systemd (this machine may not run it): no resolved, no networkd
                "__splitroute_client_systemd": {"units": {}},
            },
            "tasks": [
                {
                    "name": "Check the arguments as the role does",
                    "ansible.builtin.validate_argument_spec": {"argument_spec": spec["options"]},
                },
                {
                    "name": "Validate",
                    "ansible.builtin.include_role": {"name": "splitroute.vpn.client", "tasks_from": "validate.yml"},
                },
                {
                    "name": "Keys and WireGuard configurations",
                    "ansible.builtin.include_role": {"name": "splitroute.vpn.client", "tasks_from": "wireguard.yml"},
                },
            ],
        }
    ]
    proc = run_play(tmp_path, play, "--check", "--diff", "-vvv")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # not vacuous: the plan and the keys task's result were printed, and the configurations' task ran (its
    # diff holds a preshared key: hidden)
    assert '"__splitroute_client_plan"' in out and '"preshared_key": true' in out
    assert '"public_keys"' in out and '"srtestkey0"' in out and '"srtestkey1"' in out
    assert "Write the WireGuard configurations" in out and "no_log: true" in out
    for secret in SECRETS:
        assert secret not in out, [line for line in out.splitlines() if secret in line][:5]


def test_wrong_types_from_inventory_and_e_get_the_roles_message(tmp_path):
    """Through Ansible, as a user sees it: values arrive tagged, from YAML and from -e."""
    tunnel = dict(TUNNELS[1], dns="10.98.0.1", peer={"public_key": PUBLIC, "endpoint": 51821})
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"splitroute_client_tunnels": [tunnel]},
            "tasks": [
                {
                    "name": "Validate",
                    "ansible.builtin.include_role": {"name": "splitroute.vpn.client", "tasks_from": "validate.yml"},
                }
            ],
        }
    ]
    extra = json.dumps({"splitroute_client_domains__x": {"srtestkey1": "netflix"}})
    proc = run_play(tmp_path, play, "-e", extra, "-e", "splitroute_client_back_port=5302x")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for message in (
        "splitroute_client_tunnels[0].peer.endpoint: must be a string, not int",
        "splitroute_client_tunnels[0].dns: must be a list, not str (write ['10.98.0.1'] for a list of one)",
        "splitroute_client_domains__x['srtestkey1']: must be a list, not str (write ['netflix'] for a list of one)",
        "splitroute_client_back_port: must be a number, not '5302x'",
    ):
        assert message in out, out[-3000:]
    assert "Traceback" not in out and "_AnsibleTagged" not in out


# ---------------------------------------------------------------- every loop of the role

# What a loop may go over without no_log: the plan and names. Anything else that can hold a key - the raw
# tunnels, the secrets, registered results (their `item` is the looped value, their diff the file) - needs
# no_log: true, unless it is narrowed to the names first.
SECRET_SOURCES = ("splitroute_client_tunnels", "_secrets", "private_key", "preshared_key", ".results")


def tasks(node, inherited=False):
    for task in node or []:
        no_log = inherited or task.get("no_log") is True
        for key in ("block", "rescue", "always"):
            if key in task:
                yield from tasks(task[key], no_log)
        yield task, no_log


def test_every_loop_goes_over_names_and_the_plan_or_is_no_log():
    checked = 0
    for path in sorted((ROLE / "tasks").glob("*.yml")) + [ROLE / "handlers" / "main.yml"]:
        for task, no_log in tasks(yaml.safe_load(path.read_text())):
            loop = task.get("loop", task.get("with_items"))
            if loop is None:
                continue
            checked += 1
            text = json.dumps(loop)
            risky = [s for s in SECRET_SOURCES if s in text]
            if ".results" in risky and "map(attribute='item')" in text:
                risky.remove(".results")
            assert not risky or no_log, "%s: %r loops over %s without no_log" % (path.name, task["name"], risky)
    assert checked >= 4
