"""playbooks/status.yml against a client-like namespace and an empty one.

The namespace gets what the client role leaves on a host - the nft table inet splitroute with a
tunnel's sets (elements added as dnsmasq adds them) and marking chain, ip rules 1000 fwmark 0x1 ->
table 100 for both families, table 100 with a default route through a wireguard-go interface wg0 and
a blackhole behind it - and the real playbook runs inside it with ansible-playbook -c local.

wireguard-go's control sockets are files in /run/wireguard, which network namespaces do not
separate: each namespace here also gets a mount namespace with a private /run/wireguard, so `wg show
all` inside sees only its own interfaces (and no other test's or engineer's).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from host_program import install, write_plan  # tests/host_program.py
from prometheus_text import parse_metrics  # tests/prometheus_text.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PLAY = ROOT / "playbooks" / "status.yml"
COLLECTIONS = ROOT / ".cache" / "collections"

CLIENT_NFT = """
table inet splitroute {
  set wg0_v4 { type ipv4_addr; flags timeout; timeout 3600s; }
  set wg0_v6 { type ipv6_addr; flags timeout; timeout 3600s; }
  set wg0_net4 { type ipv4_addr; flags interval; auto-merge; elements = { 10.99.0.1/32, 203.0.113.0/24 } }
  set wg0_net6 { type ipv6_addr; flags interval; auto-merge; }
  chain output {
    type route hook output priority mangle; policy accept;
    ct mark != 0 meta mark set ct mark return
    ct state new ip daddr @wg0_v4 meta mark set 0x1 ct mark set meta mark return
    ct state new ip6 daddr @wg0_v6 meta mark set 0x1 ct mark set meta mark return
    ct state new ip daddr @wg0_net4 meta mark set 0x1 ct mark set meta mark return
    ct state new ip6 daddr @wg0_net6 meta mark set 0x1 ct mark set meta mark return
  }
}
"""
V4_ELEMENTS = ["198.51.100.%d" % i for i in range(10, 15)]
V6_ELEMENTS = ["2001:db8::10", "2001:db8::11"]


class Box:
    """Runs commands in a network namespace, with a mount namespace holding a private /run/wireguard."""

    def __init__(self, netns):
        self.netns = netns
        self.procs = []
        os.makedirs("/run/wireguard", exist_ok=True)  # the mount point; wg-quick and wireguard-go make it too
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs -o mode=0700 tmpfs /run/wireguard && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.holder.stdout.readline().strip() == "ready", "no private /run/wireguard"

    def argv(self, *cmd):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *cmd]

    def run(self, *cmd, check=True, **kw):
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, check=check, **kw)

    def start(self, *cmd):
        proc = subprocess.Popen(self.argv(*cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def close(self):
        for proc in self.procs + [self.holder]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture
def box(netns):
    made = Box(netns)
    yield made
    made.close()
    assert all(proc.poll() is not None for proc in made.procs + [made.holder])


def ansible_env(**kw):
    return dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")),
        **kw,
    )


def playbook(box, textfile, check=False):
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    cmd = [
        "ansible-playbook", "-i", "localhost,", "-c", "local",
        "-e", "ansible_python_interpreter=/usr/bin/python3",
        "-e", "splitroute_status_hosts=localhost",
        "-e", "splitroute_status_textfile=%s" % textfile,
        str(PLAY),
    ]  # fmt: skip
    if check:
        cmd.append("--check")
    proc = subprocess.run(box.argv(*cmd), capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    stats = out["stats"]["localhost"]
    assert proc.returncode == 0 and not stats["failures"], proc.stdout[-4000:]
    assert stats["changed"] == 0, "the status play changed something: %r" % stats
    lines = next(
        task["hosts"]["localhost"]["msg"] for task in out["plays"][0]["tasks"] if task["task"]["name"] == "Report"
    )
    return lines, proc.stdout


def metric(samples, which, **labels):
    want = set(labels.items())
    found = [value for (n, lab), value in samples.items() if n == which and want <= lab]
    assert len(found) == 1, "%s%r: %r" % (which, labels, found)
    return found[0]


def snapshot(box):
    text = ""
    for cmd in (
        ["nft", "list", "ruleset"],
        ["ip", "-4", "rule"],
        ["ip", "-6", "rule"],
        ["ip", "-4", "route", "show", "table", "all"],
        ["ip", "-6", "route", "show", "table", "all"],
        ["ip", "link"],
    ):
        text += box.run(*cmd).stdout
    return re.sub(r" expires \S+", "", text)


def nft_count(box, name):
    data = json.loads(box.run("nft", "-j", "list", "set", "inet", "splitroute", name).stdout)
    return sum(len(item["set"].get("elem", [])) for item in data["nftables"] if "set" in item)


def client_like(box, tmp_path):
    box.run("nft", "-f", "-", input=CLIENT_NFT)
    box.run("nft", "add element inet splitroute wg0_v4 { %s }" % ", ".join(e + " timeout 1h" for e in V4_ELEMENTS))
    box.run("nft", "add element inet splitroute wg0_v6 { %s }" % ", ".join(e + " timeout 1h" for e in V6_ELEMENTS))
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    peer_private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    peer = subprocess.run(
        ["wg", "pubkey"], input=peer_private, capture_output=True, text=True, check=True
    ).stdout.strip()
    key = tmp_path / "wg0.key"
    key.write_text(private + "\n")
    key.chmod(0o600)
    box.start("wireguard-go", "-f", "wg0")
    for _attempt in range(100):
        if box.run("ip", "link", "show", "wg0", check=False).returncode == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("wireguard-go made no wg0")
    for _attempt in range(100):
        if box.run("wg", "show", "wg0", check=False).returncode == 0:
            break
        time.sleep(0.1)
    box.run("wg", "set", "wg0", "private-key", str(key),
            "peer", peer, "endpoint", "192.0.2.2:51820", "allowed-ips", "0.0.0.0/0,::/0")  # fmt: skip
    box.run("ip", "addr", "add", "10.99.0.10/32", "dev", "wg0")
    box.run("ip", "addr", "add", "fd10:99::10/128", "dev", "wg0")
    box.run("ip", "link", "set", "wg0", "up")
    for family in ("-4", "-6"):
        box.run("ip", family, "rule", "add", "priority", "1000", "fwmark", "0x1", "lookup", "100")
        box.run("ip", family, "route", "add", "blackhole", "default", "table", "100", "metric", "100")
        box.run("ip", family, "route", "add", "default", "dev", "wg0", "table", "100", "metric", "10")
    return private, peer


def test_status_of_a_client_then_its_blackhole_removed(box, tmp_path):
    private, peer = client_like(box, tmp_path)
    assert nft_count(box, "wg0_v4") == len(V4_ELEMENTS) and nft_count(box, "wg0_v6") == len(V6_ELEMENTS)
    textfile = tmp_path / "x.prom"
    before = snapshot(box)

    lines, output = playbook(box, textfile)
    assert snapshot(box) == before, "the status play changed the namespace"
    assert private not in output and private not in textfile.read_text()
    assert lines[0].startswith("localhost: client configured, gateway not configured, no problems"), lines
    assert "  tunnel wg0: up, 1 peer (0 with a handshake), last handshake never, rx 0 B, tx 0 B" in lines
    assert "    sets: wg0_v4 %d, wg0_v6 %d, wg0_net4 2, wg0_net6 0" % (len(V4_ELEMENTS), len(V6_ELEMENTS)) in lines
    for family in ("ipv4", "ipv6"):
        assert (
            "    %s: mark 0x1 -> rule 1000 -> table 100: route dev wg0 metric 10, blackhole metric 100 (armed)" % family
        ) in lines
    assert any(line.startswith("gateway: not configured") for line in lines)

    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wg0.key", "x.prom"], "a temporary file was left"
    samples = parse_metrics(textfile.read_text())
    assert metric(samples, "splitroute_set_elements", set="wg0_v4") == nft_count(box, "wg0_v4") == len(V4_ELEMENTS)
    assert metric(samples, "splitroute_set_elements", set="wg0_v6") == len(V6_ELEMENTS)
    assert metric(samples, "splitroute_set_elements", host="localhost", table="splitroute", set="wg0_net4") == 2
    assert metric(samples, "splitroute_tunnel_up", interface="wg0") == 1
    assert metric(samples, "splitroute_tunnel_last_handshake_seconds", interface="wg0") == 0
    assert metric(samples, "splitroute_peer_last_handshake_seconds", interface="wg0", peer=peer) == 0
    assert metric(samples, "splitroute_rule_present", name="wg0", family="ipv4", table="100") == 1
    for family in ("ipv4", "ipv6"):
        assert metric(samples, "splitroute_blackhole_armed", table="100", family=family) == 1
        assert metric(samples, "splitroute_route_present", table="100", family=family) == 1
    assert metric(samples, "splitroute_client_configured") == 1
    assert metric(samples, "splitroute_gateway_configured") == 0
    assert metric(samples, "splitroute_problems") == 0
    assert abs(metric(samples, "splitroute_status_timestamp_seconds") - time.time()) < 600

    # someone deletes the IPv4 blackhole: reported disarmed, in the report and in the metrics
    box.run("ip", "-4", "route", "del", "blackhole", "default", "table", "100")
    lines, _output = playbook(box, textfile)
    assert "    ipv4: mark 0x1 -> rule 1000 -> table 100: route dev wg0 metric 10, NO blackhole (not armed)" in lines
    assert "PROBLEM: tunnel wg0 ipv4: table 100 has no blackhole default route (not fail-closed)" in lines
    samples = parse_metrics(textfile.read_text())
    assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv4") == 0
    assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv6") == 1
    assert metric(samples, "splitroute_problems") == 1

    # --check: the same report, and the textfile is left as it was
    written = textfile.read_text()
    mtime = textfile.stat().st_mtime_ns
    box.run("ip", "link", "set", "wg0", "down")
    lines, _output = playbook(box, textfile, check=True)
    assert "  tunnel wg0: down, 1 peer (0 with a handshake), last handshake never, rx 0 B, tx 0 B" in lines
    assert "PROBLEM: tunnel wg0: interface down" in lines
    assert textfile.read_text() == written and textfile.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wg0.key", "x.prom"]


def test_status_of_a_host_with_nothing(box, tmp_path):
    textfile = tmp_path / "x.prom"
    lines, _output = playbook(box, textfile)
    assert lines[0].startswith("localhost: client not configured, gateway not configured, no problems"), lines
    assert lines[1:] == [
        "client: not configured (no nft table inet splitroute, no rules at priorities 1000-1099)",
        "gateway: not configured (no nft table inet splitroute_gateway, no rules at priorities 2000-2199)",
    ]
    samples = parse_metrics(textfile.read_text())
    assert metric(samples, "splitroute_client_configured", host="localhost") == 0
    assert metric(samples, "splitroute_gateway_configured", host="localhost") == 0
    assert not [name for name, _labels in samples if name.startswith(("splitroute_tunnel", "splitroute_set"))]


def test_textfile_path_is_checked(box, tmp_path):
    env = ansible_env()
    cmd = [
        "ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3",
        "-e", "splitroute_status_hosts=localhost", "-e", "splitroute_status_textfile=%s" % (tmp_path / "x.txt"),
        str(PLAY),
    ]  # fmt: skip
    proc = subprocess.run(box.argv(*cmd), capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert proc.returncode != 0 and "must be an absolute path ending in .prom" in proc.stdout
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the host program, no playbook

CLIENT_GENERATIONS_NFT = """
table inet splitroute {
  set gw_v4_a { type ipv4_addr; flags timeout; timeout 3600s; }
  set gw_v4_b { type ipv4_addr; flags timeout; timeout 3600s; }
  set gw_net4 { type ipv4_addr; flags interval; elements = { 10.99.0.1/32 } }
  chain output {
    type route hook output priority mangle; policy accept;
    ct mark != 0 meta mark set ct mark return
    ct state new ip daddr @gw_v4_a meta mark set 0x7 ct mark set meta mark return
    ct state new ip daddr @gw_v4_b meta mark set 0x7 ct mark set meta mark return
    ct state new ip daddr @gw_net4 meta mark set 0x7 ct mark set meta mark return
  }
}
"""


def wg_interface(box, name, key_path, port, peer, peer_port=None, allowed="10.99.0.0/24"):
    box.start("wireguard-go", "-f", name)
    for _attempt in range(100):
        if box.run("wg", "show", name, check=False).returncode == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("wireguard-go made no %s" % name)
    box.run("ip", "link", "set", name, "up")
    if peer_port:  # the side that starts: a keepalive every second makes the handshake at once
        box.run("wg", "set", name, "private-key", str(key_path), "listen-port", str(port), "peer", peer, "endpoint",
                "127.0.0.1:%d" % peer_port, "allowed-ips", allowed, "persistent-keepalive", "1")  # fmt: skip
    else:
        box.run("wg", "set", name, "private-key", str(key_path), "listen-port", str(port), "peer", peer,
                "allowed-ips", allowed)  # fmt: skip


def keypair(tmp_path, name):
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout.strip()
    path = tmp_path / ("%s.key" % name)
    path.write_text(private + "\n")
    path.chmod(0o600)
    return private, public, path


def test_the_host_program_rewrites_the_metrics_without_a_playbook(box, tmp_path):
    """`splitroute metrics --textfile` (what the runtime role's timer runs) on a client-like namespace with
    a real WireGuard handshake, run twice with nothing else in between but time and one set element, as
    dnsmasq adds it: the handshake age grows, the set's size changes, both textfiles parse strictly."""
    program, plans = install(tmp_path / "program")
    write_plan(plans, "client", {
        "role": "client", "version": 1, "settings": {"priority_base": 1000},
        "tunnels": [{"name": "gw", "fwmark": 7, "table": 100, "priority": 1000}], "nft": {"table": "splitroute"},
    })  # fmt: skip
    box.run("nft", "-f", "-", input=CLIENT_GENERATIONS_NFT)
    box.run("nft", "add element inet splitroute gw_v4_a { 198.51.100.10 timeout 1h, 198.51.100.11 timeout 1h }")
    private, public, key = keypair(tmp_path, "gw")
    far_private, far_public, far_key = keypair(tmp_path, "far")
    wg_interface(box, "far", far_key, 51902, public, allowed="10.99.0.1/32")
    wg_interface(box, "gw", key, 51901, far_public, peer_port=51902)
    box.run("ip", "addr", "add", "10.99.0.1/32", "dev", "gw")
    for family in ("-4", "-6"):
        box.run("ip", family, "rule", "add", "priority", "1000", "fwmark", "0x7", "lookup", "100")
        box.run("ip", family, "route", "add", "blackhole", "default", "table", "100", "metric", "100")
        box.run("ip", family, "route", "add", "default", "dev", "gw", "table", "100", "metric", "10")
    for _attempt in range(100):
        if box.run("wg", "show", "gw", "latest-handshakes").stdout.split()[-1:] not in ([], ["0"]):
            break
        time.sleep(0.1)
    else:
        pytest.fail("no handshake between gw and far")

    textfile = tmp_path / "node-exporter" / "splitroute.prom"
    textfile.parent.mkdir()
    cmd = ["/usr/bin/python3", "-I", str(program), "--plan-dir", str(plans)]
    box.run(*cmd, "metrics", "--host", "laptop-1", "--textfile", str(textfile))
    first = textfile.read_text()
    time.sleep(2)
    box.run("nft", "add element inet splitroute gw_v4_b { 198.51.100.12 timeout 1h }")
    box.run(*cmd, "metrics", "--host", "laptop-1", "--textfile", str(textfile))
    second = textfile.read_text()

    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    assert [p.name for p in textfile.parent.iterdir()] == ["splitroute.prom"], "a temporary file was left"
    before, after = parse_metrics(first), parse_metrics(second)
    for samples in (before, after):
        assert metric(samples, "splitroute_client_configured", host="laptop-1") == 1
        assert metric(samples, "splitroute_problems") == 0, box.run(*cmd, "status").stdout
        assert metric(samples, "splitroute_tunnel_up", interface="gw") == 1
        assert metric(samples, "splitroute_rule_present", name="gw", family="ipv4", table="100") == 1
        assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv4") == 1
        assert metric(samples, "splitroute_set_elements", set="gw_v4_a") == 2
        assert metric(samples, "splitroute_peer_last_handshake_seconds", interface="gw", peer=far_public) > 0
    assert metric(before, "splitroute_set_elements", set="gw_v4_b") == 0
    assert metric(after, "splitroute_set_elements", set="gw_v4_b") == 1 == nft_count(box, "gw_v4_b")
    handshake = metric(before, "splitroute_tunnel_last_handshake_seconds", interface="gw")
    assert handshake == metric(after, "splitroute_tunnel_last_handshake_seconds", interface="gw")
    ages = [metric(s, "splitroute_tunnel_handshake_age_seconds", interface="gw") for s in (before, after)]
    stamps = [metric(s, "splitroute_status_timestamp_seconds") for s in (before, after)]
    assert ages[1] - ages[0] == stamps[1] - stamps[0] >= 2, (ages, stamps)
    for text in (first, second):
        assert private not in text and far_private not in text

    # the readable and the JSON status: the same report, and no key in either
    readable = box.run(*cmd, "status", "--host", "laptop-1").stdout
    assert readable.startswith("laptop-1: client configured, gateway not configured, no problems")
    assert "    sets: gw_net4 1, gw_v4_a 2, gw_v4_b 1" in readable.split("\n")
    assert "  tunnel gw: up, 1 peer (1 with a handshake), last handshake " in readable
    report = json.loads(box.run(*cmd, "status", "--json", "--host", "laptop-1").stdout)
    assert [t["name"] for t in report["client"]["tunnels"]] == ["gw"]
    assert report["client"]["tunnels"][0]["elements"] == 4
    assert {w["interface"] for w in report["wireguard"]} == {"gw", "far"}
    for text in (readable, json.dumps(report)):
        assert private not in text and far_private not in text
