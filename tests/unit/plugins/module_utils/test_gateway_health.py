"""The gateway's failover (`splitroute --role gateway health`: _health, _host_health) against the real kernel.

A gateway namespace with two providers, each a namespace behind the veth pair the plan names (srgw-NAME on the
gateway, srgw0 inside), as the role and `splitroute boot` make them. Each provider's "tunnel" is an interface
named tun0 in its namespace, a veth pair to an internet namespace that holds the probe target (the providers'
DNS upstream) and an echo service answering with the source address it saw: the provider's tun0 address, as
the namespace masquerades on tun*. A request from the provider class's address on the gateway shows which
provider it left by. The program's rounds run in the gateway namespace, the plan is the one the role renders
(gateway_plan_file), and the probes are sent from inside each provider's namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan, gateway_plan_file

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
UPSTREAM = "198.51.100.53"  # a's DNS upstream: the default probe target
UPSTREAM_B = "198.51.100.54"  # b's
ECHO = "198.51.100.80"
PEER = "10.4.0.130"  # in the provider class (10.4.0.128/25)

ANSWER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7777))
while True:
    data, peer = s.recvfrom(64)
    s.sendto(peer[0].encode(), peer)
"""
ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 0))
s.settimeout(0.5)
try:
    s.sendto(b"?", (sys.argv[1], 7777))
    print(s.recvfrom(64)[0].decode())
except OSError as exc:
    print("error: %s" % (exc.strerror or "timed out"))
"""
# the rules and the tables' blackholes, as `splitroute boot` leaves them
BOOT = """
import json, sys
from ansible_collections.splitroute.vpn.plugins.module_utils import _host
plan = json.load(open(sys.argv[1]))
_host.merge_rules(plan["rules"], plan["routes"], lambda m: None)
"""
ROUND = """
import json, sys
from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _host_health
plan = json.load(open(sys.argv[1]))
path = sys.argv[2]
state = _host_health.read_state(path)
hups = []
state = _host_health.round_(plan, state, print, hup=hups.append)
_host.write_atomic(path, json.dumps(state))
print("HUP %s" % " ".join(hups))
"""


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def the_plan(tag):
    peers = [{"name": "peer", "address": PEER, "public_key": KEY}]
    classes = [{"range": "10.4.0.0/25", "exit": "direct"}, {"range": "10.4.0.128/25", "exit": "a" + tag}]
    providers = [
        {"name": "a" + tag, "server": "192.0.2.1", "config": "client\n", "fallback": ["b" + tag]},
        {"name": "b" + tag, "server": "192.0.2.2", "config": "client\n", "dns_upstreams": [UPSTREAM_B]},
    ]
    settings = {"address": "10.4.0.1/24", "dns_upstreams": [UPSTREAM], "table_base": 200, "priority_base": 2000}
    return gateway_plan_file(gateway_plan(peers, classes, providers, settings))


def tunnel(ns, prov, index, up=True):
    """PROV's tun0 in its namespace (to the internet namespace), or gone (its OpenVPN client stopped)."""
    far = "t%d-%s" % (index, prov["name"][1:])
    if not up:
        ip("-n", prov["netns"], "link", "del", "tun0", check=False)
        return
    ip("link", "add", "tun0", "netns", prov["netns"], "type", "veth", "peer", "name", far, "netns", ns["net"])
    ip("-n", prov["netns"], "addr", "add", "10.8.%d.2/24" % index, "dev", "tun0")
    ip("-n", ns["net"], "addr", "add", "10.8.%d.1/24" % index, "dev", far)
    ip("-n", prov["netns"], "link", "set", "tun0", "up")
    ip("-n", ns["net"], "link", "set", far, "up")
    ip("-n", prov["netns"], "route", "add", "default", "via", "10.8.%d.1" % index)


@pytest.fixture
def gateway(tmp_path):
    tag = uuid.uuid4().hex[:6]
    plan = the_plan(tag)
    ns = {"gw": "srgg-" + tag, "net": "srgn-" + tag}
    provs = plan["providers"]
    names = [ns["gw"], ns["net"]] + [p["netns"] for p in provs]
    procs = []
    for name in names:
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
    try:
        for addr in (UPSTREAM, UPSTREAM_B, ECHO):
            ip("-n", ns["net"], "addr", "add", addr + "/32", "dev", "lo")
        ip("-n", ns["gw"], "addr", "add", PEER + "/32", "dev", "lo")
        for index, (prov, space) in enumerate(zip(provs, plan["namespaces"]), start=1):
            ip("link", "add", prov["host_veth"], "netns", ns["gw"], "type", "veth", "peer", "name", prov["ns_veth"],
               "netns", prov["netns"])  # fmt: skip
            ip("-n", ns["gw"], "addr", "add", space["veth"]["host_addresses"][0], "dev", prov["host_veth"])
            ip("-n", prov["netns"], "addr", "add", space["veth"]["ns_addresses"][0], "dev", prov["ns_veth"])
            ip("-n", ns["gw"], "link", "set", prov["host_veth"], "up")
            ip("-n", prov["netns"], "link", "set", prov["ns_veth"], "up")
            for route in space["routes"]:
                ip("-n", prov["netns"], "route", "add", route["dest"], "via", route["via"])
            forward = "open('/proc/sys/net/ipv4/ip_forward', 'w').write('1')"
            subprocess.run(["ip", "netns", "exec", prov["netns"], sys.executable, "-c", forward], check=True)
            masquerade = "table ip t {\n chain p {\n  type nat hook postrouting priority srcnat\n"
            masquerade += '  oifname "tun*" masquerade\n }\n}\n'
            subprocess.run(["ip", "netns", "exec", prov["netns"], "nft", "-f", "-"], input=masquerade, text=True,
                           check=True)  # fmt: skip
            tunnel(ns, prov, index)
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns["net"], sys.executable, "-c", ANSWER, ECHO]))
        group = plan["failover"]["groups"][0]
        group["servers_file"] = str(tmp_path / "servers.conf")
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        time.sleep(0.3)
        gw = {"ns": ns, "dir": tmp_path, "plan": plan}
        in_gateway(gw, "-c", BOOT, str(tmp_path / "plan.json"))
        yield gw
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def in_gateway(gw, *argv):
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["ip", "netns", "exec", gw["ns"]["gw"], sys.executable, *argv],
                          capture_output=True, text=True, check=True, env=env)  # fmt: skip


def health_round(gw):
    out = in_gateway(gw, "-c", ROUND, str(gw["dir"] / "plan.json"), str(gw["dir"] / "state.json")).stdout
    return [line for line in out.splitlines() if line.startswith("splitroute health")], out.splitlines()[-1]


def ask(gw):
    """Who the echo service saw for a request from the provider class: the provider's tun0 address."""
    return in_gateway(gw, "-c", ASK, ECHO, PEER).stdout.strip()


def default_route(gw):
    out = ip("-n", gw["ns"]["gw"], "route", "show", "table", "200").stdout
    return next((line.strip() for line in out.splitlines() if line.startswith("default via")), None)


def servers(gw):
    return (gw["dir"] / "servers.conf").read_text().splitlines()[1:]


def test_the_provider_class_moves_to_its_fallback_by_the_namespaces_and_into_the_blackhole(gateway):
    gw = gateway
    a, b = gw["plan"]["providers"]
    # at start only the blackhole: nothing leaves before a provider passed a check
    assert default_route(gw) is None
    assert "blackhole default" in ip("-n", gw["ns"]["gw"], "route", "show", "table", "200").stdout
    assert ask(gw).startswith("error")
    logs, hups = health_round(gw)
    assert logs == ["splitroute health: provider %s: starting: blackhole -> %s (%s is healthy)" % ((a["name"],) * 3)]
    assert default_route(gw) == "default via %s dev %s metric 10" % (a["ns_address"], a["host_veth"])
    assert ask(gw) == "10.8.1.2"
    # the provider's resolver asks a's upstream from a's veth address, and was told so
    assert servers(gw) == ["server=%s@%s" % (UPSTREAM, a["host_address"])]
    assert hups == "HUP splitroute-gateway-dns@%s.service" % a["name"]

    # a's OpenVPN client stops (its tun0 is gone): three failed checks, then b carries a's class
    tunnel(gw["ns"], a, 1, up=False)
    for _round in range(2):
        assert health_round(gw)[0] == []
    state = json.loads((gw["dir"] / "state.json").read_text())
    assert "no tun* interface" in state["exits"][a["name"]]["reason"]
    logs, _hups = health_round(gw)
    assert logs == [
        "splitroute health: provider %s: %s -> %s (%s is down: namespace %s: no tun* interface (the tunnel is down))"
        % (a["name"], a["name"], b["name"], a["name"], a["netns"])
    ]
    assert default_route(gw) == "default via %s dev %s metric 10" % (b["ns_address"], b["host_veth"])
    assert ask(gw) == "10.8.2.2"  # through b's namespace and tunnel (routed back there to the class)
    # DNS follows: b's upstream, still asked from a's veth address (a's table: by b now)
    assert servers(gw) == ["server=%s@%s" % (UPSTREAM_B, a["host_address"])]

    # b's namespace goes too: no provider is healthy, the class is blackholed
    subprocess.run(["ip", "netns", "del", b["netns"]], check=True)
    for _round in range(3):
        logs, _hups = health_round(gw)
    assert logs and logs[0].startswith("splitroute health: provider %s: %s -> blackhole" % (a["name"], b["name"]))
    assert "namespace %s: No such file or directory" % b["netns"] in logs[0]
    assert default_route(gw) is None
    assert "blackhole default" in ip("-n", gw["ns"]["gw"], "route", "show", "table", "200").stdout
    assert ask(gw).startswith("error")

    # a comes back: after rise (3) good checks it carries its class again
    tunnel(gw["ns"], a, 1)
    for _round in range(2):
        assert health_round(gw)[0] == []
        assert ask(gw).startswith("error")
    logs, _hups = health_round(gw)
    assert logs == ["splitroute health: provider %s: blackhole -> %s (%s is healthy)" % ((a["name"],) * 3)]
    assert ask(gw) == "10.8.1.2"
    ip("netns", "add", b["netns"])  # (for the fixture's clean-up)


def test_a_probe_inside_a_namespace_leaves_by_that_namespace_only(gateway):
    """The same target answers through a's tunnel; with a's tunnel gone the check fails although b's namespace
    (and the gateway's own) could reach it: the probe is sent in a's namespace."""
    from ansible_collections.splitroute.vpn.plugins.module_utils import _health  # noqa: PLC0415

    gw = gateway
    a, b = gw["plan"]["providers"]
    exits = gw["plan"]["failover"]["exits"]
    script = (
        "import json, sys\n"
        "from ansible_collections.splitroute.vpn.plugins.module_utils import _health\n"
        "print(json.dumps(_health.check(json.loads(sys.argv[1]))))\n"
    )
    ok, rtt, reason = json.loads(in_gateway(gw, "-c", script, json.dumps(exits[a["name"]])).stdout)
    assert ok and rtt is not None and reason == "ok"
    ip("netns", "exec", a["netns"], "ip", "route", "del", "default")
    ok, rtt, reason = json.loads(in_gateway(gw, "-c", script, json.dumps(exits[a["name"]])).stdout)
    assert not ok and reason.startswith("icmp %s: " % UPSTREAM), reason
    assert json.loads(in_gateway(gw, "-c", script, json.dumps(exits[b["name"]])).stdout)[0] is True
    # not in a namespace at all: a clear reason, no exception
    assert _health.check(dict(exits[a["name"]], netns="srgw-none-" + uuid.uuid4().hex[:4]))[2].endswith(
        "No such file or directory"
    )


def test_the_host_program_runs_its_rounds_writes_its_state_and_stops_at_once_on_sigterm(gateway):
    """`splitroute --role gateway health` as its unit runs it: the plan from the plan directory, the state in
    the file `splitroute status` reads, the route in place after the first round; SIGTERM between two rounds
    ends it at once (the unit's stop, a restart after a run of the role)."""
    gw = gateway
    a = gw["plan"]["providers"][0]
    (gw["dir"] / "gateway.json").write_text((gw["dir"] / "plan.json").read_text())
    state = gw["dir"] / "health.json"
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "SPLITROUTE_HEALTH_STATE": str(state)}  # fmt: skip
    main = (
        "import sys\nfrom ansible_collections.splitroute.vpn.plugins.module_utils import _host\nsys.exit(_host.main())"
    )
    argv = ["ip", "netns", "exec", gw["ns"]["gw"], sys.executable, "-c", main, "--plan-dir", str(gw["dir"]),
            "--role", "gateway", "health"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _attempt in range(50):
            if state.exists():
                break
            time.sleep(0.1)
        written = json.loads(state.read_text())
        assert written["groups"][a["name"]]["exit"] == a["name"]
        assert written["exits"][a["name"]]["healthy"] is True
        assert default_route(gw) == "default via %s dev %s metric 10" % (a["ns_address"], a["host_veth"])
        time.sleep(0.5)  # between two rounds (2 s apart)
        proc.terminate()
        start = time.monotonic()
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - start < 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stderr.read()
    names = sorted([a["name"], gw["plan"]["providers"][1]["name"]])
    assert "splitroute health: watching %s (exits %s; endpoints by name: none), every 2s" % (
        a["name"], ", ".join(names)) in log  # fmt: skip
    assert "splitroute health: provider %s: starting: blackhole -> %s" % (a["name"], a["name"]) in log
