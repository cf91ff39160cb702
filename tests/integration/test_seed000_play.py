"""Seed 000's client data path, built by a play of the four modules, proven with packets.

The play runs through ansible-playbook on localhost with Debian's /usr/bin/python3 as the
module interpreter, as on a managed Debian 12 host (python3-pyroute2 0.7.2, python3-nftables).

Namespaces: LAB is the internet (upstream DNS, and an HTTP service on 198.51.100.10 that
answers "direct"), CLIENT is the split-tunnel host, VPN sits behind the client's "tunnel"
interface wg0 and serves the same address answering "tunnel". A request's answer tells
which way it went.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PLAY = HERE / "seed000.yml"
SERVICE = "198.51.100.10"
MARK_CHAIN = """
add chain inet splitroute output { type route hook output priority mangle; policy accept; }
add rule inet splitroute output ct mark != 0 meta mark set ct mark
add rule inet splitroute output ip daddr @wg0_v4 meta mark set 0x1 ct mark set meta mark
add rule inet splitroute output ip6 daddr @wg0_v6 meta mark set 0x1 ct mark set meta mark
add chain inet splitroute nat { type nat hook postrouting priority srcnat; policy accept; }
add rule inet splitroute nat oifname "wg0" masquerade
"""


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def nsx(ns, *cmd, check=True, **kw):
    return sh("ip", "netns", "exec", ns, *cmd, check=check, **kw)


def playbook(extra, check=False):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    cmd = [
        "ansible-playbook", "-i", "localhost,", "-c", "local",
        "-e", "ansible_python_interpreter=/usr/bin/python3",
        "-e", json.dumps(extra), str(PLAY),
    ]  # fmt: skip
    if check:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
    stats = out["stats"]["localhost"]
    if proc.returncode != 0 or stats["failures"]:
        failed = [
            (task["task"]["name"], res.get("msg"))
            for play in out["plays"]
            for task in play["tasks"]
            for res in task["hosts"].values()
            if res.get("failed")
        ]
        pytest.fail("play failed: %r" % failed)
    return stats


class Daemons:
    def __init__(self):
        self.procs = []

    def start(self, ns, *cmd):
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def lab():
    # dnsmasq reads its files after dropping to user nobody: pytest's 0700 tmp_path won't do
    tmp_path = Path(tempfile.mkdtemp(prefix="srt-seed000-"))
    tmp_path.chmod(0o755)
    tag = uuid.uuid4().hex[:6]
    names = {
        "seed_lab": "srt-lab-" + tag,
        "seed_client": "srt-cli-" + tag,
        "seed_vpn": "srt-vpn-" + tag,
        "seed_client_uplink": "up-" + tag,
        "seed_dnsmasq_file": str(tmp_path / "splitroute.conf"),
        "seed_domains": ["tunnel.test"],
    }
    sh("ip", "netns", "add", names["seed_lab"])
    sh("ip", "-n", names["seed_lab"], "link", "set", "lo", "up")
    daemons = Daemons()
    yield names, daemons, tmp_path
    daemons.stop()
    for key in ("seed_vpn", "seed_client", "seed_lab"):
        sh("ip", "netns", "del", names[key], check=False)
        shutil.rmtree("/etc/netns/%s" % names[key], ignore_errors=True)
    shutil.rmtree(tmp_path, ignore_errors=True)


def serve(daemons, ns, directory, answer):
    directory.mkdir()
    directory.chmod(0o755)
    (directory / "index.html").write_text(answer)
    sh("ip", "-n", ns, "addr", "add", SERVICE + "/32", "dev", "lo")
    daemons.start(ns, "python3", "-m", "http.server", "--bind", SERVICE, "--directory", str(directory), "80")


def fetch(ns, name):
    proc = nsx(
        ns, "curl", "-s", "--max-time", "3", "--resolve", "%s:80:%s" % (name, SERVICE), "http://%s/" % name, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else "timeout (curl exit %d)" % proc.returncode


def dig(ns, name, rtype="A"):
    return nsx(ns, "dig", "+short", "+time=2", "+tries=1", "@127.0.0.1", name, rtype).stdout.split()


def set_elements(ns, name):
    raw = json.loads(nsx(ns, "nft", "-j", "list", "set", "inet", "splitroute", name).stdout)
    out = []
    for item in raw["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            out.append(elem["elem"]["val"] if isinstance(elem, dict) else elem)
    return out


def wait_for_port(ns, address, port):
    for _attempt in range(50):
        if nsx(ns, "bash", "-c", "exec 3<>/dev/tcp/%s/%d" % (address, port), check=False).returncode == 0:
            return
        time.sleep(0.1)
    pytest.fail("nothing listens on %s:%d in %s" % (address, port, ns))


def test_seed000_client_data_path(lab):
    names, daemons, tmp = lab
    client, lab_ns, vpn = names["seed_client"], names["seed_lab"], names["seed_vpn"]

    # (check mode on a bare machine stops at the second namespace, which needs the first:
    # the modules' own suites cover check mode before a change)
    assert playbook(names)["changed"] > 0
    assert playbook(names)["changed"] == 0  # idempotent
    assert playbook(names, check=True)["changed"] == 0  # no drift

    # the data path at work: upstream DNS and the two services
    (tmp / "hosts").write_text("%s tunnel.test\n%s direct.test\n2001:db8::10 tunnel.test\n" % (SERVICE, SERVICE))
    daemons.start(
        lab_ns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts=%s" % (tmp / "hosts"),
        "--listen-address=10.77.0.1", "--bind-interfaces", "--pid-file=",
    )  # fmt: skip
    serve(daemons, lab_ns, tmp / "direct", "direct")
    serve(daemons, vpn, tmp / "tunnel", "tunnel")
    nsx(client, "nft", "-f", "-", input=MARK_CHAIN)
    daemons.start(
        client, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--cache-size=0",
        "--conf-file=%s" % names["seed_dnsmasq_file"], "--server=10.77.0.1",
        "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
    )  # fmt: skip
    wait_for_port(lab_ns, SERVICE, 80)
    wait_for_port(vpn, SERVICE, 80)
    time.sleep(0.5)

    # before the name is resolved, its address is not in the set: the request goes direct
    assert fetch(client, "tunnel.test") == "direct"
    assert dig(client, "tunnel.test") == [SERVICE]
    assert dig(client, "tunnel.test", "AAAA") == ["2001:db8::10"]
    assert SERVICE in set_elements(client, "wg0_v4")
    assert "2001:db8::10" in set_elements(client, "wg0_v6")
    # resolved through the listed domain: the same address now goes through the tunnel
    assert fetch(client, "tunnel.test") == "tunnel"
    # an unlisted name resolves but fills nothing
    dig(client, "direct.test")
    assert set_elements(client, "wg0_v4") == [SERVICE]

    # fail closed: the tunnel goes down, marked traffic hits the blackhole, nothing leaks direct
    nsx(client, "ip", "link", "set", "wg0", "down")
    assert fetch(client, "tunnel.test").startswith("timeout")
    nsx(client, "ip", "link", "set", "wg0", "up")
    nsx(client, "ip", "route", "replace", "default", "dev", "wg0", "metric", "10", "table", "100")
    assert fetch(client, "tunnel.test") == "tunnel"

    # teardown step one: rules, routes, sets and the dnsmasq file go; the namespaces stay to be inspected
    # (the chains that use the sets are not the modules' to remove: a set in use cannot be deleted)
    nsx(client, "nft", "delete", "chain", "inet", "splitroute", "output")
    nsx(client, "nft", "delete", "chain", "inet", "splitroute", "nat")
    teardown = dict(names, seed_state="absent", seed_remove_namespaces=False)
    assert playbook(teardown)["changed"] > 0
    rules = nsx(client, "ip", "rule").stdout + nsx(client, "ip", "-6", "rule").stdout
    assert "lookup 100" not in rules
    assert nsx(client, "ip", "route", "show", "table", "100", check=False).stdout.strip() == ""
    assert nsx(client, "nft", "list", "set", "inet", "splitroute", "wg0_v4", check=False).returncode != 0
    assert not Path(names["seed_dnsmasq_file"]).exists()
    # teardown step two: the namespaces and their veths
    daemons.stop()
    assert playbook(dict(teardown, seed_remove_namespaces=True))["changed"] > 0
    listed = sh("ip", "netns", "list").stdout
    assert client not in listed and vpn not in listed
    assert names["seed_client_uplink"] not in sh("ip", "-n", lab_ns, "link").stdout
    assert playbook(dict(teardown, seed_remove_namespaces=True))["changed"] == 0
