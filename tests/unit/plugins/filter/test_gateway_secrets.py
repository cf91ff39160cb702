"""No key of the gateway role reaches a task's output, at any verbosity (issue 11, item 4).

- the plan (printed by set_fact at -v) carries no key, profile or password: only flags;
  gateway_secrets gives the preshared keys to the no_log tasks that write them;
- no message of the plan filter includes a secret;
- every loop of the role and the playbooks either carries no secret in its items (Ansible
  prints the whole item at -v, loop_control.label or not) or is no_log (a static check);
- the role's validate.yml and peers.yml, run for real on this machine (the controller side:
  keys, client configurations, QR codes in a temporary directory) at -vvv with --diff, print
  none of the keys, while the client configuration they write holds them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import (
    gateway_plan,
    gateway_plan_file,
    gateway_secrets,
)
from ansible_collections.splitroute.vpn.plugins.module_utils import _host

ROOT = Path(__file__).resolve().parents[4]
KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
PSK1 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
PSK2 = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
PASSWORD = "pw-0d7c1e5b-never-printed"
PROFILE = "client\n# profile-5f2a9c-never-printed\n"
SECRETS = (PSK1, PSK2, PASSWORD, "profile-5f2a9c")

SETTINGS = {"address": "10.4.0.1/24", "endpoint": "198.51.100.40", "dns_upstreams": ["9.9.9.9"]}
CLASSES = [{"range": "10.4.0.0/25", "exit": "direct"}, {"range": "10.4.0.128/25", "exit": "provider"}]
PROVIDERS = [{"name": "provider", "server": "198.51.100.30", "config": PROFILE, "username": "u", "password": PASSWORD}]
PEERS = [
    {"name": "laptop", "address": "10.4.0.10", "public_key": KEY1, "preshared_key": PSK1},
    {"name": "phone", "address": "10.4.0.140", "preshared_key": PSK2},
    {"name": "tablet", "address": "10.4.0.141"},
]


def test_the_plan_carries_no_key_only_flags():
    plan = gateway_plan(PEERS, CLASSES, PROVIDERS, SETTINGS)
    text = json.dumps(plan)
    for secret in SECRETS:
        assert secret not in text
    assert [(p["name"], p["preshared_key"]) for p in plan["peers"]] == [
        ("laptop", True),
        ("phone", True),
        ("tablet", False),
    ]
    assert plan["peers"][0]["public_key"] == KEY1  # public keys are not secrets


def test_the_plan_file_for_the_host_carries_no_secret_and_the_program_reads_it(tmp_path):
    """/etc/splitroute/gateway.json (mode 0644) is the plan as it is, with role, version and table name."""
    plan = gateway_plan(PEERS, CLASSES, PROVIDERS, dict(SETTINGS, interface="wg7", table_base=210))
    text = json.dumps(gateway_plan_file(plan, "splitroute_gateway"))
    for secret in SECRETS:
        assert secret not in text
    (tmp_path / "gateway.json").write_text(text)
    read = _host.load_plan("gateway", str(tmp_path))
    assert (read["role"], read["version"], read["nft_table"]) == ("gateway", _host.PLAN_VERSION, "splitroute_gateway")
    assert (read["interface"], read["table_base"], read["providers"][0]["table"]) == ("wg7", 210, 210)
    assert {k: read[k] for k in plan} == json.loads(json.dumps(plan))
    with pytest.raises(AnsibleFilterError, match="expects the plan"):
        gateway_plan_file([], "splitroute_gateway")


def test_gateway_secrets_gives_the_preshared_keys_by_name():
    assert gateway_secrets(PEERS) == {"laptop": PSK1, "phone": PSK2}
    assert gateway_secrets([{"name": "x", "preshared_key": "not a key"}, "junk", {"preshared_key": PSK1}]) == {}
    assert gateway_secrets("laptop") == {}


@pytest.mark.parametrize(
    ("peers", "providers"),
    [
        ([dict(PEERS[0], preshared_key=PSK1[:-4])], PROVIDERS),
        ([dict(PEERS[0], preshared_key=PSK1 + "\nPostUp=x")], PROVIDERS),
        ([dict(PEERS[0], preshared_key=[PSK1])], PROVIDERS),
        (PEERS, [dict(PROVIDERS[0], password=PASSWORD + "\nremote evil")]),
        (PEERS, [dict(PROVIDERS[0], password=[PASSWORD])]),
        (PEERS, [dict(PROVIDERS[0], password=PASSWORD, username=None)]),
        (PEERS, [dict(PROVIDERS[0], config=[PROFILE])]),
    ],
)
def test_no_message_includes_a_secret(peers, providers):
    with pytest.raises(AnsibleFilterError) as err:
        gateway_plan(peers, CLASSES, providers, SETTINGS)
    for secret in (PSK1[:-4], PASSWORD, "profile-5f2a9c"):
        assert secret not in str(err.value)


# ---------------------------------------------------------------- the role's loops

TASK_FILES = [
    *sorted(ROOT.glob("roles/gateway/tasks/*.yml")),
    ROOT / "roles/gateway/handlers/main.yml",
    *sorted(ROOT.glob("playbooks/tasks/*.yml")),
]
PLAYBOOKS = sorted(ROOT.glob("playbooks/*.yml"))
# What holds a secret: the role's inventory (preshared keys, profiles, passwords), the
# client role's (private keys), the filters that read or make keys, and the results of
# the no_log tasks (found below).
SECRET_SOURCES = {
    "splitroute_gateway_peers",
    "splitroute_gateway_providers",
    "splitroute_client_tunnels",
    "gateway_secrets",
    "gateway_genkey",
    "__splitroute_gateway_preshared_keys",
}
# Loops over a secret source that print no secret: the task, the loop it must have, and why.
NOT_SECRET = {
    "Read the clients' public keys from the clients": (
        "pairs.append([host, tunnel.name | default('')])",
        "its items are [host, tunnel name] pairs",
    ),
    "Load a new private key into the server if it is up": (
        "[splitroute_gateway_interface] if __splitroute_gateway_key_made is changed else []",
        "its item is the interface name; the key task's result only decides whether there is one",
    ),
    "Show the QR codes (each holds the peer's private key)": (
        "__splitroute_gateway_peer_qr.results",
        "it prints the QR codes only when splitroute_gateway_peer_qr_terminal asks for it; otherwise the"
        " results it loops over are skipped ones, with no output",
    ),
}


def _tasks(items):
    for task in items or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


def all_tasks():
    for path in TASK_FILES:
        for task in _tasks(yaml.safe_load(path.read_text())):
            yield path, task
    for path in PLAYBOOKS:
        for play in yaml.safe_load(path.read_text()):
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                for task in _tasks(play.get(key)):
                    yield path, task


def _loop(task):
    """The text of a task's loop (None without one)."""
    loops = [
        v if isinstance(v, str) else json.dumps(v) for k, v in task.items() if k == "loop" or k.startswith("with_")
    ]
    return loops[0] if loops else None


def test_every_loop_carries_no_secret_or_is_no_log():
    tasks = list(all_tasks())
    sources = set(SECRET_SOURCES) | {t["register"] for _path, t in tasks if t.get("no_log") is True and "register" in t}
    assert "__splitroute_gateway_peer_keys" in sources  # the slurped private keys
    loops = [(path, task) for path, task in tasks if _loop(task) is not None]
    assert len(loops) > 20
    leaks = [
        "%s: %s loops over %s" % (path.relative_to(ROOT), task.get("name"), name)
        for path, task in loops
        if task.get("no_log") is not True and not _known(task)
        for name in sorted(sources)
        if name in _loop(task)
    ]
    assert leaks == []


def _known(task):
    """One of NOT_SECRET, with the loop it was judged on."""
    loop, _why = NOT_SECRET.get(task.get("name"), (None, None))
    return loop is not None and loop in _loop(task)


def test_every_task_that_handles_a_secret_is_no_log():
    """Beyond loops: a task that reads a secret source in its arguments is no_log (or, for wg.conf,
    no_log whenever a peer has a preshared key)."""
    offenders = []
    for path, task in all_tasks():
        text = yaml.safe_dump({k: v for k, v in task.items() if k not in ("name", "when", "loop", "loop_control")})
        if any(name in text for name in ("gateway_secrets", "gateway_genkey", "splitroute_gateway_providers[")):
            if task.get("no_log") in (None, False):
                offenders.append("%s: %s" % (path.relative_to(ROOT), task.get("name")))
    assert offenders == []


# ---------------------------------------------------------------- a real run at -vvv

PLAYBOOK = """
- name: The gateway role's validation and its controller side (unmanaged peers)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: splitroute.vpn.gateway
        tasks_from: validate.yml
    - name: Keys, client configurations and QR codes of the unmanaged peers
      ansible.builtin.include_role:
        name: splitroute.vpn.gateway
        tasks_from: peers.yml
"""


@pytest.mark.skipif(not shutil.which("qrencode"), reason="the role draws QR codes with qrencode")
def test_a_run_at_vvv_prints_no_key(tmp_path):
    playbook = tmp_path / "run.yml"
    playbook.write_text(PLAYBOOK)
    variables = {
        "splitroute_gateway_peers": PEERS,
        "splitroute_gateway_providers": PROVIDERS,
        "splitroute_gateway_endpoint": "198.51.100.40",
        "splitroute_gateway_peer_config_dir": str(tmp_path / "peers"),
        "splitroute_gateway_public_key": KEY1,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="0")
    cmd = ["ansible-playbook", "-vvv", "--diff", "-i", "localhost,", "-c", "local", str(playbook)]
    cmd += ["-e", "@%s" % (tmp_path / "vars.json"), "-e", "ansible_python_interpreter=%s" % sys.executable]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "Look for the peers' QR codes" in output and "(item=phone)" in output
    private = {name: (tmp_path / "peers" / ("%s.key" % name)).read_text().strip() for name in ("phone", "tablet")}
    phone = (tmp_path / "peers" / "phone.conf").read_text()
    # the keys reach the files ...
    assert "PrivateKey = %s\n" % private["phone"] in phone
    assert "PresharedKey = %s\n" % PSK2 in phone
    assert "PresharedKey" not in (tmp_path / "peers" / "tablet.conf").read_text()
    assert (tmp_path / "peers" / "phone.png").stat().st_size > 0
    # ... and never the output
    for secret in (*SECRETS, *private.values()):
        assert secret not in output
