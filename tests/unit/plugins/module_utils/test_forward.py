"""Forwarded traffic (the client's `forward`, _forward and client.nft.j2's prerouting chains).

The settings' checks first. Then the role's own ruleset against the real kernel: a router namespace (the client
host) with the table as the role renders it, the plan's fwmark rule, its tunnel's table (default by "wg0", a
veth to a tunnel namespace, the blackhole behind it) and an uplink to a wan namespace. Both the tunnel and the
wan namespace hold the same service addresses and answer with their own name and the source they saw. A LAN
(two hosts on a bridge behind lan0) and a container on a bridge made after the ruleset was loaded ask through
the router: which namespace answered is the exit a request really took.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import client_host_plan, client_plan, client_settings
from ansible_collections.splitroute.vpn.plugins.module_utils import _forward

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "filter"))
import test_client_templates as templates  # (the role's templates, rendered as the role does)

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
TV_MAC = "02:00:00:00:77:03"
TUNNEL = {
    "name": "wg0",
    "address": ["10.99.0.10/32", "fd99::10/128"],
    "peer": {"public_key": KEY, "endpoint": "203.0.113.2:51820"},
    "dns": ["10.99.0.1", "fd99::1"],
    "domains": ["example.com"],
}
FORWARD = {
    "interfaces": ["lan0", "docker*"],
    "policies": [{"source": TV_MAC, "tunnel": "wg0"}, {"source": "192.168.77.9", "exclude": True}],
}
SETTINGS = {"forward": FORWARD, "dns_redirect": False, "dns_bypass": {"dot": True}}


def errors_of(settings, tunnels=(TUNNEL,)):
    with pytest.raises(AnsibleFilterError) as caught:
        client_plan(list(tunnels), settings)
    return str(caught.value)


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("lan0", "splitroute_client_forward: must be a dict"),
        ({"interface": ["lan0"]}, "splitroute_client_forward: unknown keys interface"),
        ({"interfaces": ["lan0\nx"]}, "splitroute_client_forward.interfaces[0]: 'lan0\\nx' is not an interface name"),
        ({"interfaces": ["do*cker"]}, "is not an interface name"),
        ({"interfaces": ["*"]}, "is not an interface name"),
        ({"interfaces": ["lo"]}, "lo is the host's own traffic"),
        ({"interfaces": ["wg*"]}, "wg* takes tunnel wg0's own interface"),
        ({"sources": ["192.168.1.0/33"]}, "splitroute_client_forward.sources[0]"),
        ({"dns": "maybe"}, "splitroute_client_forward.dns"),
        ({"policies": [{"source": "192.168.1.5"}]}, "policies[0]: give either tunnel"),
        ({"policies": [{"source": "192.168.1.5", "tunnel": "wg0", "exclude": True}]}, "give either tunnel"),
        ({"policies": [{"source": "192.168.1.5", "tunnel": "wg9"}]}, "policies[0].tunnel: no tunnel is named wg9"),
        ({"policies": [{"source": "02:00:00:00:00:zz", "tunnel": "wg0"}]}, "or a MAC address"),
        ({"policies": [{"source": "1.2.3.4\n", "exclude": True}]}, "policies[0].source"),
        ({"policies": [{"source": "10.0.0.1", "exclude": True, "why": 1}]}, "policies[0]: unknown keys why"),
        (
            {"policies": [{"source": "10.0.0.1", "exclude": True}, {"source": "10.0.0.1/32", "tunnel": "wg0"}]},
            "policies[1]: 10.0.0.1/32 is already in splitroute_client_forward.policies[0]",
        ),
    ],
)
def test_bad_forward_settings_are_refused_before_anything_changes(forward, message):
    assert message in errors_of({"forward": forward})


def test_a_mark_outside_the_roles_bits_is_refused():
    assert "wg0.fwmark: 0x100 is not a mark in the role's bits" in errors_of(
        {"fwmark_mask": 0xFF}, [dict(TUNNEL, fwmark=0x100)]
    ).replace("splitroute_client_tunnels[0].", "wg0.")
    (plan,) = client_plan([dict(TUNNEL, fwmark=0x100)], {"fwmark_mask": 0xFF00})
    assert plan["fwmark"] == 0x100


def test_the_plan_takes_the_sources_and_the_policies_per_tunnel():
    checked, errors = _forward.settings(
        dict(
            FORWARD,
            sources=["192.168.50.0/24"],
            policies=FORWARD["policies"] + [{"source": "fd77::3", "tunnel": "wg0"}],
        ),
        "forward",
    )
    assert errors == []
    out = _forward.plan(checked, client_plan([TUNNEL]), 0xFF)
    assert out["enabled"] and out["dns"]
    assert out["sources4"] == ["192.168.50.0/24"] and out["sources6"] == ["fd77::3/128"]
    assert out["sources_mac"] == [TV_MAC] and out["exclude4"] == ["192.168.77.9/32"]
    assert [(w["tunnel"], w["mac"], w["6"]) for w in out["whole"]] == [("wg0", [TV_MAC], ["fd77::3/128"])]
    assert (
        out["whole"][0]["mark"] == "meta mark set meta mark & 0xffffff00 | 0x1 ct mark set ct mark & 0xffffff00 | 0x1"
    )
    off = _forward.plan(_forward.settings(None, "forward")[0], client_plan([TUNNEL]), 0xFF)
    assert not off["enabled"] and not off["dns"]


def test_with_forward_off_the_prerouting_chains_are_empty():
    given = {"forward": {}}
    host = client_host_plan(client_plan([TUNNEL], given), client_settings(given))
    text = (
        templates.environment()
        .get_template("client.nft.j2")
        .render(templates.context(client_plan([TUNNEL], given), client_settings(given)))
    )
    assert not host["forward"]["enabled"]
    for chain in ("prerouting", "steer", "bypass_forward"):
        body = text.split("  chain %s {\n" % chain)[-1].split("  }\n")[0]
        assert body.strip() == "", (chain, body)
    front = (
        templates.environment()
        .get_template("dnsmasq-front.conf.j2")
        .render(templates.context(client_plan([TUNNEL], given), client_settings(given)))
    )
    assert "bind-interfaces\n" in front and "interface=" not in front


# ---------------------------------------------------------------- against the kernel

LISTED4, UNLISTED4, LOCAL4 = "198.51.100.210", "198.51.100.99", "192.168.200.2"
LISTED6, UNLISTED6 = "2001:db8:100::10", "2001:db8:100::99"
SERVE = """
import socket, sys, threading
name, log = sys.argv[1], sys.argv[2]
def answer(conn, peer):
    with conn:
        for line in conn.makefile("r"):
            conn.sendall(("%s %s\\n" % (name, peer[0])).encode())
def serve(family, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    s.listen(16)
    while True:
        conn, peer = s.accept()
        with open(log, "a") as f:
            f.write("%s %d\\n" % (peer[0], port))
        threading.Thread(target=answer, args=(conn, peer), daemon=True).start()
for family in (socket.AF_INET, socket.AF_INET6):
    for port in (7000, 853):
        threading.Thread(target=serve, args=(family, port), daemon=True).start()
threading.Event().wait()
"""
# one connection, two lines (the second packet must take the first one's exit); prints the answers or the error
ASK = """
import socket, sys
dest, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in dest else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(1.5)
try:
    if source != "-":
        s.bind((source, 0))
    s.connect((dest, port))
    f = s.makefile("r")
    out = []
    for _ in range(2):
        s.sendall(b"?\\n")
        out.append(f.readline().strip())
    print(" | ".join(out))
except OSError as exc:
    print("error: %s" % (exc.strerror or exc))
"""


def ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True)


def in_ns(ns, *argv, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True, **kw)


def tunnel_routes(r, verb, table):
    """The tunnel table's default by the tunnel, before the blackhole (metric 100), as the role's routes."""
    ip("-n", r, "route", verb, "default", "via", "10.99.0.1", "dev", "wg0", "table", table, "metric", "10")
    ip("-n", r, "-6", "route", verb, "default", "via", "fd99::1", "dev", "wg0", "table", table, "metric", "10")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    if shutil.which("nft") is None or shutil.which("dnsmasq") is None:
        pytest.skip("needs nft and dnsmasq")
    tmp = tmp_path_factory.mktemp("forward")
    tag = uuid.uuid4().hex[:6]
    ns = {k: "srf-%s-%s" % (k, tag) for k in ("router", "tunnel", "wan", "lan", "tv", "ctr")}
    procs = []
    for name in ns.values():
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
    r = ns["router"]
    try:
        # the router's two exits, each holding the service addresses
        for dev, far, where, near4, far4, near6, far6 in (
            ("wg0", "t0", ns["tunnel"], "10.99.0.10/24", "10.99.0.1/24", "fd99::10/64", "fd99::1/64"),
            ("up0", "w0", ns["wan"], "203.0.113.1/24", "203.0.113.2/24", "2001:db8:1::1/64", "2001:db8:1::2/64"),
        ):
            ip("link", "add", dev, "netns", r, "type", "veth", "peer", "name", far, "netns", where)
            for n, d, a4, a6 in ((r, dev, near4, near6), (where, far, far4, far6)):
                ip("-n", n, "addr", "add", a4, "dev", d)
                ip("-n", n, "addr", "add", a6, "dev", d, "nodad")
                ip("-n", n, "link", "set", d, "up")
            for addr in (LISTED4 + "/32", UNLISTED4 + "/32", LISTED6 + "/128", UNLISTED6 + "/128"):
                ip("-n", where, "addr", "add", addr, "dev", "lo")
        ip("-n", ns["wan"], "addr", "add", LOCAL4 + "/32", "dev", "lo")
        for family, back in (("-4", "192.168.0.0/16"), ("-4", "172.17.0.0/16"), ("-6", "fd77::/64")):
            ip(
                "-n",
                ns["wan"],
                family,
                "route",
                "add",
                back,
                "via",
                "203.0.113.1" if family == "-4" else "2001:db8:1::1",
            )
        # the LAN: a bridge lan0 with two hosts (lan: .2 and the excluded .9; tv: .3 with its own MAC)
        ip("-n", r, "link", "add", "lan0", "type", "bridge")
        ip("-n", r, "addr", "add", "192.168.77.1/24", "dev", "lan0")
        ip("-n", r, "addr", "add", "fd77::1/64", "dev", "lan0", "nodad")
        ip("-n", r, "link", "set", "lan0", "up")
        for port, host, addrs, mac in (("plan", ns["lan"], ["192.168.77.2/24", "192.168.77.9/24"], None),
                                       ("ptv", ns["tv"], ["192.168.77.3/24"], TV_MAC)):  # fmt: skip
            ip("link", "add", port, "netns", r, "type", "veth", "peer", "name", "eth0", "netns", host)
            ip("-n", r, "link", "set", port, "master", "lan0", "up")
            if mac:
                ip("-n", host, "link", "set", "eth0", "address", mac)
            for addr in addrs:
                ip("-n", host, "addr", "add", addr, "dev", "eth0")
            ip("-n", host, "addr", "add", "fd77::%s/64" % addrs[0].split(".")[3].split("/")[0], "dev", "eth0", "nodad")
            ip("-n", host, "link", "set", "eth0", "up")
            ip("-n", host, "route", "add", "default", "via", "192.168.77.1")
            ip("-n", host, "-6", "route", "add", "default", "via", "fd77::1")
        for key in ("ipv4/ip_forward", "ipv6/conf/all/forwarding"):
            in_ns(r, "sh", "-c", "echo 1 > /proc/sys/net/%s" % key)
        ip("-n", r, "route", "add", "default", "via", "203.0.113.2")
        ip("-n", r, "-6", "route", "add", "default", "via", "2001:db8:1::2")
        ip("-n", r, "route", "add", "192.168.200.0/24", "via", "203.0.113.2")
        # the role's ruleset, its rules and its tunnel's table (default by the tunnel, the blackhole behind)
        plan = client_plan([TUNNEL], SETTINGS)
        host = client_host_plan(plan, client_settings(SETTINGS))
        text = (
            templates.environment()
            .get_template("client.nft.j2")
            .render(templates.context(plan, client_settings(SETTINGS)))
        )
        (tmp / "client.nft").write_text(text)
        in_ns(r, "nft", "-f", str(tmp / "client.nft"))
        (rule,) = host["rules"]
        for family in ("-4", "-6"):
            ip("-n", r, family, "rule", "add", "priority", str(rule["priority"]), "fwmark",
               "%s/%s" % (rule["fwmark"], rule["fwmask"]), "lookup", rule["table"])  # fmt: skip
            ip("-n", r, family, "route", "add", "blackhole", "default", "table", rule["table"], "metric", "100")
        tunnel_routes(r, "add", rule["table"])
        # what dnsmasq fills for a listed name
        in_ns(r, "nft", "add", "element", "inet", "splitroute", "wg0_v4_a", "{ %s }" % LISTED4)
        in_ns(r, "nft", "add", "element", "inet", "splitroute", "wg0_v6_a", "{ %s }" % LISTED6)
        # another program's marks in the bits the role leaves alone (after conntrack, before the role's chain)
        other = textwrap.dedent("""\
            table inet other {
              chain pre { type filter hook prerouting priority -160; policy accept;
                iifname "lan0" meta mark set meta mark | 0x10000 ct mark set ct mark | 0x20000
              }
              chain post { type filter hook postrouting priority 0; policy accept;
                oifname "wg0" meta mark 0x10001 counter name both
              }
              counter both { }
            }
            """)
        in_ns(r, "nft", "-f", "-", input=other)
        logs = {}
        for name in ("tunnel", "wan", "router"):
            logs[name] = tmp / ("%s.log" % name)
            logs[name].write_text("")
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns[name], sys.executable, "-c", SERVE, name,
                                           str(logs[name])]))  # fmt: skip
        # the front resolver as the role runs it for forwarded sources: bind-dynamic on the interfaces
        conf = tmp / "front.conf"
        conf.write_text(
            "port=53\nlisten-address=127.0.0.1\n%sbind-dynamic\nno-resolv\nno-hosts\nuser=root\npid-file=\n"
            "address=/#/192.0.2.53\naddress=/#/2001:db8::53\n"
            % "".join("interface=%s\n" % i for i in FORWARD["interfaces"])
        )
        procs.append(subprocess.Popen(["ip", "netns", "exec", r, "dnsmasq", "-k", "-C", str(conf)]))
        time.sleep(1.0)
        yield {"ns": ns, "logs": logs, "tmp": tmp}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], check=False)


def ask(net, host, dest, port=7000, source="-"):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return in_ns(net["ns"][host], sys.executable, "-c", ASK, dest, str(port), source, env=env).stdout.strip()


def answered(name, seen):
    return "%s %s | %s %s" % (name, seen, name, seen)


def test_a_lan_host_s_listed_destinations_take_the_tunnel_and_the_rest_goes_direct(net):
    assert ask(net, "lan", LISTED4) == answered("tunnel", "10.99.0.10")  # masqueraded on the tunnel
    assert ask(net, "lan", LISTED6) == answered("tunnel", "fd99::10")
    assert ask(net, "lan", UNLISTED4) == answered("wan", "192.168.77.2")
    assert ask(net, "lan", UNLISTED6) == answered("wan", "fd77::2")
    # the host itself is left alone
    assert ask(net, "lan", "192.168.77.1") == answered("router", "192.168.77.2")


def test_the_roles_marks_keep_the_other_bits_of_another_programs_marks(net):
    """Another table marks lan0's packets (0x10000) and their connections (0x20000): the role's mark goes into
    its own bits (0xff), the fwmark rule still matches (the tunnel answered), and both bits stay."""
    r = net["ns"]["router"]
    assert ask(net, "lan", LISTED4) == answered("tunnel", "10.99.0.10")
    entries = in_ns(r, "cat", "/proc/net/nf_conntrack").stdout.splitlines()
    marks = {line.split("mark=")[1].split()[0] for line in entries if "dport=7000" in line and LISTED4 in line}
    assert marks == {str(0x20001)}, entries
    counter = json.loads(in_ns(r, "nft", "-j", "list", "counter", "inet", "other", "both").stdout)
    assert next(c["counter"]["packets"] for c in counter["nftables"] if "counter" in c) > 0


def test_an_excluded_source_is_left_alone_and_a_whole_source_goes_by_the_tunnel_but_to_local_networks(net):
    assert ask(net, "lan", LISTED4, source="192.168.77.9") == answered("wan", "192.168.77.9")
    assert ask(net, "tv", UNLISTED4) == answered("tunnel", "10.99.0.10")  # by its MAC address
    assert ask(net, "tv", UNLISTED6) == answered("tunnel", "fd99::10")
    assert ask(net, "tv", LOCAL4) == answered("wan", "192.168.77.3")  # a private network: not by the tunnel
    assert ask(net, "tv", "192.168.77.1") == answered("router", "192.168.77.3")


def test_a_container_on_a_bridge_made_after_the_role_ran_is_steered_the_same(net):
    r, c = net["ns"]["router"], net["ns"]["ctr"]
    ip("-n", r, "link", "add", "docker0", "type", "bridge")
    ip("-n", r, "addr", "add", "172.17.0.1/16", "dev", "docker0")
    ip("-n", r, "link", "set", "docker0", "up")
    ip("link", "add", "vethc", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", c)
    ip("-n", r, "link", "set", "vethc", "master", "docker0", "up")
    ip("-n", c, "addr", "add", "172.17.0.2/16", "dev", "eth0")
    ip("-n", c, "link", "set", "eth0", "up")
    ip("-n", c, "route", "add", "default", "via", "172.17.0.1")
    time.sleep(0.5)
    assert ask(net, "ctr", LISTED4) == answered("tunnel", "10.99.0.10")
    assert ask(net, "ctr", UNLISTED4) == answered("wan", "172.17.0.2")
    # and its DNS to anywhere is the front's, which answers on the new bridge (bind-dynamic)
    assert dig(net, "ctr", "198.51.100.53") == "192.0.2.53"


def dig(net, host, server, tcp=False, rtype="A"):
    argv = ["dig", "+short", "+time=1", "+tries=1", "@" + server, "x.example.com", rtype] + (["+tcp"] if tcp else [])
    return in_ns(net["ns"][host], *argv).stdout.strip()


@pytest.mark.parametrize("tcp", [False, True])
def test_a_lan_hosts_dns_to_anywhere_is_answered_by_the_front(net, tcp):
    if shutil.which("dig") is None:
        pytest.skip("needs dig")
    assert dig(net, "lan", "198.51.100.53", tcp) == "192.0.2.53"  # nothing listens there: redirected
    assert dig(net, "lan", "2001:db8:100::53", tcp, "AAAA") == "2001:db8::53"
    assert dig(net, "lan", "192.168.77.1", tcp) == "192.0.2.53"
    # the excluded source is not redirected (nothing answers at that address)
    argv = ["dig", "+short", "+time=1", "+tries=1", "-b", "192.168.77.9", "@198.51.100.53", "x.example.com"]
    out = subprocess.run(["ip", "netns", "exec", net["ns"]["lan"], *argv], capture_output=True, text=True, check=False)
    assert "192.0.2.53" not in out.stdout


def test_dns_over_tls_from_the_lan_is_refused_at_once_but_from_the_excluded_source(net):
    start = time.monotonic()
    assert ask(net, "lan", UNLISTED4, port=853) == "error: Connection refused"
    assert ask(net, "lan", UNLISTED6, port=853) == "error: Connection refused"
    assert time.monotonic() - start < 2
    assert ask(net, "lan", UNLISTED4, port=853, source="192.168.77.9") == answered("wan", "192.168.77.9")


def test_with_the_tunnel_down_listed_traffic_is_blackholed_and_never_leaves_by_the_uplink(net):
    r = net["ns"]["router"]
    before = net["logs"]["wan"].read_text()
    ip("-n", r, "link", "set", "wg0", "down")
    try:
        for host, dest in (("lan", LISTED4), ("lan", LISTED6), ("tv", UNLISTED4), ("tv", UNLISTED6)):
            assert ask(net, host, dest).startswith("error"), (host, dest)
        assert ask(net, "lan", UNLISTED4) == answered("wan", "192.168.77.2")
        seen = net["logs"]["wan"].read_text()[len(before) :].split()
        assert seen[::2] == ["192.168.77.2"], seen
    finally:
        ip("-n", r, "link", "set", "wg0", "up")
        ip("-n", r, "addr", "replace", "fd99::10/64", "dev", "wg0", "nodad")  # (IPv6 goes with the link)
        tunnel_routes(r, "replace", "100")
    time.sleep(0.5)
    assert ask(net, "lan", LISTED4) == answered("tunnel", "10.99.0.10")


def test_a_connection_keeps_its_exit_after_its_destination_left_the_set(net):
    """ct mark: established packets take the first packet's exit, whatever the sets hold now."""
    r = net["ns"]["router"]
    script = ASK.replace('for _ in range(2):', 'for i in range(2):\n        if i: __import__("os").system(sys.argv[4])')
    flush = "ip netns exec %s nft flush set inet splitroute wg0_v4_a" % r
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        out = in_ns(net["ns"]["lan"], sys.executable, "-c", script, LISTED4, "7000", "-", flush, env=env).stdout
        assert out.strip() == answered("tunnel", "10.99.0.10")
        assert ask(net, "lan", LISTED4) == answered("wan", "192.168.77.2")  # a new one: no longer listed
    finally:
        in_ns(r, "nft", "add", "element", "inet", "splitroute", "wg0_v4_a", "{ %s }" % LISTED4)
