"""The client's failover (`splitroute health`, _health and _host_health).

The pure parts first: the hysteresis, the choice of an exit, the ICMP packets. Then the whole of it against
the real kernel: a client namespace with two exits (each a namespace behind a veth pair, both answering for the
same service address with their own name), the plan the role renders for a tunnel with a fallback, and the
program's rounds run in the client namespace one at a time. Which exit a request really left by is the name
in the answer; the route, the conntrack entries and the servers-file are read from the kernel and the disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import client_host_plan, client_plan, client_settings
from ansible_collections.splitroute.vpn.plugins.module_utils import _health, _host_health

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def run_checks(results, fall=3, rise=3):
    state, seen = None, []
    for ok in results:
        state = _health.step(state, ok, fall, rise, rtt=0.01 if ok else None, reason="" if ok else "lost")
        seen.append(state["healthy"])
    return state, seen


def test_the_first_good_check_makes_an_exit_healthy_then_fall_failures_take_it_out_and_rise_bring_it_back():
    state, seen = run_checks([True, False, False, True, False, False, False, True, True, True])
    assert seen == [True, True, True, True, True, True, False, False, False, True]
    assert state["failures"] == 5 and state["checks"] == 10 and state["reason"] == "ok"


def test_at_start_fall_failures_make_an_exit_down_and_nothing_before_is_healthy():
    _state, seen = run_checks([False, False, False, True, True, True])
    assert seen == [None, None, False, False, False, True]
    assert not any(_health.choose(["a"], {"a": bool(h)}) for h in seen[:5])


def test_a_flapping_exit_never_changes_state_faster_than_the_hysteresis():
    """Up and down on alternate checks: never fall failures or rise successes in a row, so no change at all."""
    _state, seen = run_checks([True] + [False, True] * 30)
    assert set(seen) == {True}
    down, _seen = run_checks([False] * 3)
    assert down["healthy"] is False
    for ok in [True, False] * 30:
        down = _health.step(down, ok, 3, 3)
        assert down["healthy"] is False  # a down exit that flaps stays down


def test_the_first_healthy_exit_is_chosen_in_order_and_sticky_keeps_the_one_in_use():
    order = ["wg0", "wg1", "wg2"]
    assert _health.choose(order, {"wg0": True, "wg1": True}) == "wg0"
    assert _health.choose(order, {"wg0": False, "wg1": True}, current="wg0") == "wg1"
    assert _health.choose(order, {"wg0": True, "wg1": True}, current="wg1") == "wg0"
    assert _health.choose(order, {"wg0": True, "wg1": True}, current="wg1", sticky=True) == "wg1"
    assert _health.choose(order, {"wg0": True, "wg1": False}, current="wg1", sticky=True) == "wg0"
    assert _health.choose(order, {"wg0": False, "wg1": False}, current="wg0") is None
    # nothing moves past an exit not checked yet: at start the primary's first answer is waited for
    assert _health.choose(order, {"wg0": None, "wg1": True}) is None
    assert _health.choose(order, {"wg0": None, "wg1": True}, current="wg1") == "wg1"
    assert _health.choose(order, {"wg0": False, "wg1": None, "wg2": True}, current="wg0") is None


def test_icmp_packets_carry_their_id_and_sequence_and_a_valid_checksum():
    packet = _health.icmp_packet(4, 0x1234, 7)
    assert _health._checksum(packet) == 0
    reply = b"\x45" + b"\0" * 19 + b"\x00" + packet[1:]
    assert _health.parse_icmp_reply(4, reply, 0x1234, 7)
    assert not _health.parse_icmp_reply(4, reply, 0x1234, 8)
    assert not _health.parse_icmp_reply(4, b"\x45" + b"\0" * 19 + packet, 0x1234, 7)  # a request, not a reply
    v6 = _health.icmp_packet(6, 1, 2)
    assert v6[0] == 128 and _health.parse_icmp_reply(6, b"\x81" + v6[1:], 1, 2)
    assert not _health.parse_icmp_reply(6, b"\x81", 1, 2)


@pytest.mark.parametrize(
    ("line", "ok"),
    [("HTTP/1.1 200 OK", True), ("HTTP/1.0 404 Not Found", True), ("HTTP/1.1 503 Busy", False), ("SSH-2.0", False),
     ("", False), ("HTTP/1.1 20", False)],
)  # fmt: skip
def test_an_http_probe_passes_on_any_answer_but_a_server_error(line, ok):
    assert _health.http_ok(line) is ok


def test_a_check_needs_a_fresh_handshake_and_every_target():
    exit_ = {"interface": "wg0", "mark": 1, "targets": ["10.0.0.1", "fd00::1"], "check": dict(_health.CHECK_DEFAULTS)}
    assert _health.check(exit_, probe=lambda t: (0.01, "ok"), ages=lambda i: [5.0])[0]
    assert _health.check(exit_, probe=lambda t: (0.01, "ok"), ages=lambda i: [500.0, None]) == (
        False, None, "wg0: no handshake in the last 200s")  # fmt: skip
    assert not _health.check(exit_, probe=lambda t: (0.01, "ok"), ages=lambda i: None)[0]
    lost = _health.check(exit_, probe=lambda t: (None, "lost") if ":" in t else (0.01, "ok"), ages=lambda i: [1.0])
    assert lost == (False, None, "lost")
    unchecked = dict(exit_, check=dict(exit_["check"], handshake_max_age=0))
    assert _health.check(unchecked, probe=lambda t: (0.02, "ok"), ages=lambda i: None) == (True, 0.02, "ok")


# ---------------------------------------------------------------- the plan


def tunnels(**health):
    check = dict({"handshake_max_age": 0, "interval": 1, "timeout": 1, "fall": 2, "rise": 2}, **health)
    return [
        {"name": "ex0", "address": ["10.1.0.2/32", "fd10:1::2/128"], "dns": ["10.1.0.1", "fd10:1::1"],
         "peer": {"public_key": KEY, "endpoint": "192.0.2.1:51820"}, "networks": ["203.0.113.5/32"],
         "fallback": ["ex1"], "health": check},
        {"name": "ex1", "address": ["10.2.0.2/32"], "dns": ["10.2.0.1"],
         "peer": {"public_key": KEY, "endpoint": "192.0.2.1:51821"}, "health": check},
    ]  # fmt: skip


def host_plan(tunnel_list=None):
    settings = {"set_timeout": 3600, "max_cache_ttl": 300, "max_ttl": 300}
    return client_host_plan(client_plan(tunnel_list or tunnels(), settings), client_settings(settings))


def test_the_plan_of_a_tunnel_with_a_fallback():
    plan = host_plan()
    (group,) = plan["failover"]["groups"]
    assert group == {
        "tunnel": "ex0", "order": ["ex0", "ex1"], "table": 100, "fwmark": 1, "fwmask": 0xFF, "families": [4, 6],
        "sticky": False,
        "dns": ["10.1.0.1", "fd10:1::1"], "servers_file": "/run/splitroute/dns/back-ex0-servers.conf",
        "back_unit": "splitroute-dns-back@ex0.service",
    }  # fmt: skip
    assert plan["failover"]["exits"]["ex1"]["targets"] == ["10.2.0.1"]
    assert plan["failover"]["exits"]["ex0"]["targets"] == ["10.1.0.1", "fd10:1::1"]
    # the group's table: the role's blackhole and probe routes, no default route, and out of the role's scope
    assert [r for r in plan["routes"] if r["table"] == "100"] == [
        {"table": "100", "dest": "10.1.0.1/32", "dev": "ex0", "family": "4", "metric": 10},
        {"table": "100", "dest": "fd10:1::1/128", "dev": "ex0", "family": "6", "metric": 10},
        {"table": "100", "dest": "default", "type": "blackhole", "metric": 100},
    ]
    assert plan["scope"]["tables"] == ["101"]
    assert plan["probe_marks"] == ["0x1", "0x2"]
    assert "server=" not in _host_health.servers_text([]).replace("# ", "")
    assert host_plan([dict(t, fallback=[]) for t in tunnels()])["failover"]["groups"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fallback": ["ex0"]}, "is the tunnel itself"),
        ({"fallback": ["nope"]}, "no tunnel is named nope"),
        ({"fallback": ["ex1", "ex1"]}, "ex1 is named twice"),
        ({"fallback": ["bad name"]}, r"fallback\[0\] .bad name. is invalid"),
        ({"health": {"method": "tcp"}}, "health.method"),
        ({"health": {"interval": 2, "timeout": 3}}, "at most the interval"),
        ({"health": {"fall": 0}}, "health.fall"),
        ({"health": {"targets": ["not-an-ip"]}}, "health.targets"),
        ({"health": {"path": "/x\nPostUp = touch /tmp/ran"}}, "health.path"),
        ({"health": {"sticky": "perhaps"}}, "health.sticky"),
        ({"health": {"nope": 1}}, "unknown keys nope"),
    ],
)
def test_a_bad_fallback_or_health_is_refused_before_anything_changes(change, message):
    given = tunnels()
    given[0] = dict(given[0], **change)
    with pytest.raises(Exception, match=message):
        host_plan(given)


def test_a_fallback_without_dns_or_a_probe_target_is_refused():
    given = tunnels()
    given[1] = {k: v for k, v in given[1].items() if k != "dns"}
    with pytest.raises(Exception, match="ex1 has no dns") as raised:
        host_plan(given)
    assert "health.targets is needed" in str(raised.value)


# ---------------------------------------------------------------- against the kernel

SERVICE = "203.0.113.5"
# in each exit: a UDP service on SERVICE that answers with the exit's name
ANSWER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7777))
while True:
    data, peer = s.recvfrom(64)
    s.sendto(sys.argv[2].encode(), peer)
"""
# in the client: one request with a mark, the answer or why there is none
ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[2]))
s.settimeout(0.5)
try:
    s.sendto(b"?", (sys.argv[1], 7777))
    print(s.recvfrom(64)[0].decode())
except OSError as exc:
    print("error: %s" % (exc.strerror or "timed out"))
"""
# in the client: one round of splitroute health, the state kept in a file between rounds
ROUND = """
import json, sys
from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _host_health
plan = json.load(open(sys.argv[1]))
path = sys.argv[2]
state = _host_health.read_state(path)
if not state:
    _host.merge_rules(plan["rules"], plan["routes"], lambda m: None)
hups = []
state = _host_health.round_(plan, state, print, hup=hups.append)
_host.write_atomic(path, json.dumps(state))
print("HUP %s" % " ".join(hups))
"""


@pytest.fixture
def lab(tmp_path):
    """A client namespace with two exits: ex0 (veth ex0 <-> e0 in namespace A, IPv4 and IPv6) and ex1 (ex1 <->
    e1 in B, IPv4). Both exits hold SERVICE and answer on it with their name."""
    tag = uuid.uuid4().hex[:6]
    ns = {"client": "srhc-" + tag, "ex0": "srha-" + tag, "ex1": "srhb-" + tag}

    def ip(*args):
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=True)

    procs = []
    for name in ns.values():
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
    try:
        for exit_, far, addr, peer in (("ex0", "e0", "10.1.0.2", "10.1.0.1"), ("ex1", "e1", "10.2.0.2", "10.2.0.1")):
            ip("link", "add", exit_, "netns", ns["client"], "type", "veth", "peer", "name", far, "netns", ns[exit_])
            ip("-n", ns["client"], "addr", "add", addr + "/24", "dev", exit_)
            ip("-n", ns[exit_], "addr", "add", peer + "/24", "dev", far)
            ip("-n", ns[exit_], "addr", "add", SERVICE + "/32", "dev", "lo")
            for where, dev in ((ns["client"], exit_), (ns[exit_], far)):
                ip("-n", where, "link", "set", dev, "up")
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns[exit_], sys.executable, "-c", ANSWER, SERVICE,
                                           exit_]))  # fmt: skip
        ip("-n", ns["client"], "addr", "add", "fd10:1::2/64", "dev", "ex0", "nodad")
        ip("-n", ns["ex0"], "addr", "add", "fd10:1::1/64", "dev", "e0", "nodad")
        # the role's ct mark: what the output chain marks, conntrack remembers
        nft = "table inet t {\n chain o {\n  type route hook output priority mangle\n"
        nft += "  meta mark != 0 ct mark set meta mark\n }\n}\n"
        subprocess.run(["ip", "netns", "exec", ns["client"], "nft", "-f", "-"], input=nft, text=True, check=True)
        plan = host_plan()
        group = plan["failover"]["groups"][0]
        group["servers_file"] = str(tmp_path / "back-ex0-servers.conf")
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        time.sleep(0.3)
        yield {"ns": ns, "dir": tmp_path, "plan": plan}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], check=False)


def in_client(lab, *argv):
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["ip", "netns", "exec", lab["ns"]["client"], sys.executable, *argv],
                          capture_output=True, text=True, check=True, env=env)  # fmt: skip


def health_round(lab):
    out = in_client(lab, "-c", ROUND, str(lab["dir"] / "plan.json"), str(lab["dir"] / "state.json")).stdout
    return [line for line in out.splitlines() if line.startswith("splitroute health")], out.splitlines()[-1]


def ask(lab, mark=1):
    return in_client(lab, "-c", ASK, SERVICE, str(mark)).stdout.strip()


def exit_link(lab, exit_, up):
    """An exit dies (everything it receives is dropped, as a dead tunnel's far end) or comes back."""
    where = ["ip", "netns", "exec", lab["ns"][exit_], "nft"]
    if up:
        subprocess.run(where + ["delete", "table", "inet", "dead"], capture_output=True, check=False)
    else:
        rules = "table inet dead {\n chain input {\n  type filter hook input priority 0; policy drop;\n }\n}\n"
        subprocess.run(where + ["-f", "-"], input=rules, text=True, check=True)


def table(lab, family=4):
    return subprocess.run(["ip", "-n", lab["ns"]["client"], "-%d" % family, "route", "show", "table", "100"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def default_dev(lab, family=4):
    """The device of the group table's default route (None: only the blackhole)."""
    lines = [line.split() for line in table(lab, family).splitlines() if line.startswith("default dev ")]
    return lines[0][2] if lines else None


def marked_entries(lab):
    out = subprocess.run(["ip", "netns", "exec", lab["ns"]["client"], "cat", "/proc/net/nf_conntrack"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return [line for line in out.stdout.splitlines() if "dport=7777" in line]


def test_traffic_moves_to_the_fallback_and_back_and_into_the_blackhole_when_every_exit_is_down(lab):
    # nothing is routed before a check found an exit up: the blackhole
    assert ask(lab).startswith("error")
    logs, hups = health_round(lab)
    assert logs == ["splitroute health: tunnel ex0: starting: blackhole -> ex0 (ex0 is healthy)"]
    assert ask(lab) == "ex0" and ask(lab, 2) == "ex1"
    assert default_dev(lab) == "ex0" and default_dev(lab, 6) == "ex0"
    assert (lab["dir"] / "back-ex0-servers.conf").read_text().endswith("server=10.1.0.1\nserver=fd10:1::1\n")
    assert hups == "HUP splitroute-dns-back@ex0.service"
    entries = marked_entries(lab)
    assert any("mark=1 " in e for e in entries) and any("mark=2 " in e for e in entries), entries

    # ex0 dies: after fall (2) failed rounds its traffic leaves by ex1, its IPv6 (ex1 has none) is blackholed
    exit_link(lab, "ex0", False)
    assert health_round(lab)[0] == [] and ask(lab) == "error: timed out"
    logs, hups = health_round(lab)
    assert len(logs) == 1 and logs[0].startswith(
        "splitroute health: tunnel ex0: ex0 -> ex1 (ex0 is down: icmp 10.1.0.1"
    )
    assert default_dev(lab) == "ex1" and default_dev(lab, 6) is None
    assert "blackhole default" in table(lab, 6)
    assert (lab["dir"] / "back-ex0-servers.conf").read_text().endswith("\nserver=10.2.0.1\n")
    # ex0's connections went from conntrack, ex1's own stayed
    entries = marked_entries(lab)
    assert not any("mark=1 " in e for e in entries) and any("mark=2 " in e for e in entries), entries
    assert ask(lab) == "ex1"

    # ex0 flaps: up and down on alternate rounds, never rise (2) good checks in a row: no switch
    for up in (True, False, True, False):
        exit_link(lab, "ex0", up)
        assert health_round(lab)[0] == []
    assert ask(lab) == "ex1"

    # ex0 is back: after rise (2) good rounds its traffic returns
    exit_link(lab, "ex0", True)
    assert health_round(lab)[0] == []
    logs, _hups = health_round(lab)
    assert logs == ["splitroute health: tunnel ex0: ex1 -> ex0 (ex0 is healthy again)"]
    assert ask(lab) == "ex0" and default_dev(lab, 6) == "ex0"

    # every exit down: the blackhole, nothing sent by either
    exit_link(lab, "ex0", False)
    exit_link(lab, "ex1", False)
    health_round(lab)
    logs, _hups = health_round(lab)
    assert len(logs) == 1 and "ex0 -> blackhole (no exit is healthy)" in logs[0]
    assert default_dev(lab) is None and default_dev(lab, 6) is None and "blackhole default" in table(lab)
    assert ask(lab).startswith("error: ")
    state = json.loads((lab["dir"] / "state.json").read_text())
    assert state["groups"]["ex0"]["exit"] is None and state["groups"]["ex0"]["switches"] == 3
    assert state["exits"]["ex0"]["healthy"] is False and state["exits"]["ex1"]["healthy"] is False

    # ex1 comes back first: the traffic resumes by it
    exit_link(lab, "ex1", True)
    health_round(lab)
    logs, _hups = health_round(lab)
    assert logs == ["splitroute health: tunnel ex0: blackhole -> ex1 (ex1 is healthy)"] and ask(lab) == "ex1"


PROBE_HTTP = """
import json, sys
from ansible_collections.splitroute.vpn.plugins.module_utils import _health
print(json.dumps([_health.probe_http(sys.argv[1], mark, 1, 8080, "/") for mark in (2, 1)]))
"""


def test_an_http_probe_goes_by_the_mark_of_its_exit_only(lab):
    """An HTTP server behind ex1: a probe with ex1's mark gets its status line, the same probe with ex0's
    mark leaves by ex0 and gets nothing."""
    server = subprocess.Popen(["ip", "netns", "exec", lab["ns"]["ex1"], sys.executable, "-m", "http.server", "8080",
                               "--bind", "10.2.0.1", "--directory", str(lab["dir"])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        health_round(lab)
        for _attempt in range(50):
            by_ex1, by_ex0 = json.loads(in_client(lab, "-c", PROBE_HTTP, "10.2.0.1").stdout)
            if by_ex1[0] is not None:
                break
            time.sleep(0.1)
        assert by_ex1[0] is not None and by_ex1[1] == "ok", by_ex1
        assert by_ex0[0] is None and "10.2.0.1:8080" in by_ex0[1], by_ex0
    finally:
        server.kill()
        server.wait()


def test_with_nothing_to_watch_the_program_says_so_and_stops(tmp_path, monkeypatch):
    """With no tunnel that has a fallback, it says so and stops at once (the unit stays active, idle). (Its
    rounds, state file and SIGTERM: test_gateway_health.py runs the program itself.)"""
    logged = []
    plan = host_plan([dict(t, fallback=[]) for t in tunnels()])
    monkeypatch.setenv("SPLITROUTE_HEALTH_STATE", str(tmp_path / "state.json"))
    assert _host_health.run(plan, logged.append, rounds=1) == 0
    assert logged == [
        "splitroute health: no tunnel or provider has a fallback, no endpoint is given as a name: nothing to watch"
    ]
    assert not (tmp_path / "state.json").exists()
    script = textwrap.dedent(
        """
        from ansible_collections.splitroute.vpn.plugins.module_utils import _host
        print(sorted(_host.role_commands("client")))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "'health'" in out


# ---------------------------------------------------------------- endpoints given as names

# in the client namespace: one lookup of the endpoint's name (no handshake counts as fresh: stale 0)
RERESOLVE = """
import json, sys, time
from ansible_collections.splitroute.vpn.plugins.module_utils import _host_health
entry = json.loads(sys.argv[1])
state = {}
print(json.dumps([_host_health.reresolve(entry, state, print, time.time(), stale=0, every=0), state]))
"""


def test_name_endpoints_are_the_tunnels_whose_peer_is_given_by_name():
    def tunnel(name, endpoint, host):
        return {"name": name, "peer": {"public_key": KEY, "endpoint": endpoint, "endpoint_host": host}}

    plan = {"tunnels": [tunnel("wg0", "vpn.example.net:51820", "vpn.example.net"),
                        tunnel("wg1", "192.0.2.1:51821", "192.0.2.1"),
                        tunnel("wg2", "[2001:db8::1]:51822", "2001:db8::1")]}  # fmt: skip
    assert _host_health.name_endpoints(plan) == [
        {"interface": "wg0", "public_key": KEY, "host": "vpn.example.net", "port": 51820}
    ]


def test_an_endpoint_name_under_a_listed_domain_is_refused():
    """Its lookup would go through a tunnel: with the tunnel down, never answered."""
    given = tunnels()
    given[0] = dict(given[0], peer={"public_key": KEY, "endpoint": "vpn.example.org:51820"})
    given[1] = dict(given[1], domains=["example.org"])
    with pytest.raises(Exception, match=r"vpn\.example\.org is under example\.org, listed for tunnel ex1"):
        host_plan(given)
    given[1] = dict(given[1], domains=["other.example.org"])
    assert host_plan(given)["tunnels"][0]["peer"]["endpoint_host"] == "vpn.example.org"


def test_an_endpoint_whose_name_moved_is_looked_up_again_and_the_tunnel_carries_on(wg_pair):
    """The server moves to another address; its name (the client namespace's /etc/hosts) follows. The
    client, still sending to the old address, gets nothing back until the program looks the name up and
    sets the new address; a name that does not move, or does not resolve, changes nothing."""
    pair = wg_pair
    assert pair["echoes"](3) == 3
    hosts = Path("/etc/netns") / pair["client"]
    hosts.mkdir(parents=True)
    try:
        subprocess.run(["ip", "-n", pair["server"], "addr", "del", "192.0.2.1/24", "dev", "vs"], check=True)
        subprocess.run(["ip", "-n", pair["server"], "addr", "add", "192.0.2.3/24", "dev", "vs"], check=True)
        assert pair["echoes"](3) == 0
        entry = {
            "interface": pair["wgc0"],
            "public_key": pair["keys"]["server"][1],
            "host": "vpn.srtest",
            "port": 51820,
        }

        def lookup(name):
            (hosts / "hosts").write_text(
                "127.0.0.1 localhost\n%s vpn.srtest\n" % name if name else "127.0.0.1 localhost\n"
            )
            out = in_ns(pair["client"], "-c", RERESOLVE, json.dumps(entry))
            return out.stdout.splitlines()

        lines = lookup(None)
        assert json.loads(lines[-1])[0] is False and json.loads(lines[-1])[1]["error"] == "vpn.srtest does not resolve"
        lines = lookup("192.0.2.3")
        changed, state = json.loads(lines[-1])
        assert changed and state["current"] == "192.0.2.3" and state["changes"] == 1
        assert lines[0].startswith(
            "splitroute health: %s: endpoint vpn.srtest is 192.0.2.3 now (was 192.0.2.1" % pair["wgc0"]
        )
        shown = subprocess.run(["ip", "netns", "exec", pair["client"], "wg", "show", pair["wgc0"], "endpoints"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "192.0.2.3:51820" in shown
        assert pair["echoes"](5) == 5
        assert json.loads(lookup("192.0.2.3")[-1])[0] is False  # where it already points
    finally:
        shutil.rmtree(hosts, ignore_errors=True)


def in_ns(ns, *argv):
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, *argv], capture_output=True, text=True,
                          check=True, env=env)  # fmt: skip
