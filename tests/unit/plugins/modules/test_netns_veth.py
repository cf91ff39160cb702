"""splitroute.vpn.netns_veth against the real kernel.

The fixture namespace `netns` plays the host: every case passes it as
peer_netns, so nothing touches the VM's own namespace. The module's own
namespace gets a unique srt-... name, removed (with /etc/netns/NAME) by a
finalizer. Packets are sent with a small raw-socket ICMP echo run inside a
namespace, so the suite needs no ping binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import ansible
import pytest

MODULE = "netns_veth"
DEBIAN_PYTHON = "/usr/bin/python3"

HOST_IF = "vh-test"
NS_IF = "eth0"

ICMP_ECHO = r"""
import ipaddress, os, select, socket, struct, sys, time
dst = ipaddress.ip_address(sys.argv[1])
deadline = time.time() + float(sys.argv[2])
if dst.version == 6:
    sock, request, reply = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6), 128, 129
else:
    sock, request, reply = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), 8, 0
ident, seq = os.getpid() & 0xFFFF, 0

def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

while time.time() < deadline:
    seq += 1
    header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
    payload = b"splitroute-test!"
    csum = 0 if dst.version == 6 else checksum(header + payload)  # the kernel fills in ICMPv6 checksums
    try:
        sock.sendto(struct.pack("!BBHHH", request, 0, csum, ident, seq) + payload, (str(dst), 0))
    except OSError as exc:
        print("send: %s" % exc)
        time.sleep(0.2)
        continue
    until = min(deadline, time.time() + 0.5)
    while time.time() < until:
        if not select.select([sock], [], [], max(0.0, until - time.time()))[0]:
            break
        data, src = sock.recvfrom(4096)
        if dst.version == 4:
            data = data[(data[0] & 0x0F) * 4 :]
        kind, _, _, rid, _ = struct.unpack("!BBHHH", data[:8])
        if kind == reply and rid == ident and ipaddress.ip_address(src[0].split("%")[0]) == dst:
            print("reply from %s" % dst)
            sys.exit(0)
sys.exit(1)
"""


# --------------------------------------------------------------------------- helpers
def ip_json(*args):
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def link_names(ns):
    return {link["ifname"] for link in ip_json("-n", ns, "link", "show")}


def link(ns, dev):
    return ip_json("-n", ns, "-d", "link", "show", "dev", dev)[0]


def addresses(ns, dev, keep_link_local=False):
    found = set()
    for info in ip_json("-n", ns, "addr", "show", "dev", dev)[0]["addr_info"]:
        if info["scope"] == "link" and info["family"] == "inet6" and not keep_link_local:
            continue
        found.add("%s/%d" % (info["local"], info["prefixlen"]))
    return found


def routes(ns, family="-4"):
    return ip_json("-n", ns, family, "route", "show", "table", "main")


def route_get(ns, dest):
    return ip_json("-n", ns, "route", "get", dest)[0]


def sysctl(ns, key):
    path = "/proc/sys/" + key.replace(".", "/")
    return subprocess.run(
        ["ip", "netns", "exec", ns, "cat", path], capture_output=True, text=True, check=True
    ).stdout.strip()


def icmp_echo(ns, dest, timeout=3.0):
    """True when DEST answers an ICMP echo sent from namespace NS."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", ICMP_ECHO, dest, str(timeout)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0


def add_unrelated_link(ns, ifname):
    """An interface that is not a veth: a dummy, or a bridge where the kernel has no dummy driver."""
    for kind in ("dummy", "bridge"):
        proc = subprocess.run(["ip", "-n", ns, "link", "add", ifname, "type", kind], capture_output=True, check=False)
        if proc.returncode == 0:
            return kind
    raise RuntimeError("cannot create a dummy or bridge interface in %s" % ns)


def netns_exists(name):
    return os.path.exists("/run/netns/%s" % name)


def snapshot(peer, name):
    """Everything a failed or check-mode run must leave as it was (other sessions add namespaces meanwhile)."""
    return {
        "netns": netns_exists(name),
        "etc_netns": os.path.exists("/etc/netns/%s" % name),
        "peer_links": sorted(link_names(peer)),
        "peer_addrs": ip_json("-n", peer, "addr"),
        "peer_routes": routes(peer) + routes(peer, "-6"),
    }


def args_for(name, peer, **over):
    args = {
        "name": name,
        "peer_netns": peer,
        "veth": {
            "host_name": HOST_IF,
            "ns_name": NS_IF,
            "host_addresses": ["10.201.0.1/24", "fd00:201::1/64"],
            "ns_addresses": ["10.201.0.2/24", "fd00:201::2/64"],
            "mtu": 1400,
        },
        "routes": [
            {"dest": "198.51.100.0/24", "via": "10.201.0.1"},
            {"dest": "2001:db8:51::/48", "via": "fd00:201::1"},
        ],
        "resolv_conf": {"nameservers": ["192.0.2.53", "2001:db8::53"], "search": ["example.test"]},
    }
    args.update(over)
    return args


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def name():
    """A unique name for the module's own namespace; removed with /etc/netns/NAME afterwards."""
    ns = "srt-" + uuid.uuid4().hex[:10]
    yield ns
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    shutil.rmtree("/etc/netns/%s" % ns, ignore_errors=True)


@pytest.fixture
def far_end(netns):
    """An unrelated interface in the peer namespace, holding addresses only reachable through the module's routes."""
    add_unrelated_link(netns, "far0")
    for cmd in (
        ("link", "set", "far0", "up"),
        ("addr", "add", "198.51.100.7/32", "dev", "far0"),
        ("addr", "add", "2001:db8:51::7/128", "dev", "far0", "nodad"),
    ):
        subprocess.run(["ip", "-n", netns, *cmd], capture_output=True, text=True, check=True)
    return {"v4": "198.51.100.7", "v6": "2001:db8:51::7"}


@pytest.fixture(scope="session")
def debian_python(tmp_path_factory):
    """An interpreter that runs modules with Debian 12's python3-pyroute2 0.7.2.

    /usr/bin/python3 with a directory on PYTHONPATH that holds only a link to the
    venv's ansible package: ansible becomes importable, the venv's pyroute2 0.9
    does not. run_module() sets PYTHONPATH itself, so the interpreter is a small
    wrapper that prepends the directory.
    """
    if not os.path.exists(DEBIAN_PYTHON):
        pytest.skip("no %s" % DEBIAN_PYTHON)
    base = tmp_path_factory.mktemp("debian-python")
    (base / "site").mkdir()
    (base / "site" / "ansible").symlink_to(Path(ansible.__file__).parent)  # the venv's ansible
    wrapper = base / "python3"
    wrapper.write_text(
        '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec %s "$@"\n' % (base / "site", DEBIAN_PYTHON)
    )
    wrapper.chmod(0o755)
    probe = subprocess.run(
        [
            str(wrapper),
            "-c",
            "import ansible, importlib.metadata as m, pyroute2; print(m.version('pyroute2'), pyroute2.__file__)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("Debian python3 cannot import ansible/pyroute2: %s" % probe.stderr)
    version, path = probe.stdout.split()
    assert version.startswith("0.7."), probe.stdout
    assert path.startswith("/usr/lib/python3/dist-packages/"), probe.stdout
    return str(wrapper)


# --------------------------------------------------------------------------- present / packets / absent
def test_check_mode_has_no_side_effects(module, netns, name):
    before = snapshot(netns, name)
    result = module(MODULE, args_for(name, netns, sysctls={"net.ipv6.conf.all.forwarding": 1}), check=True)
    assert result["changed"] is True
    assert result["operations"][0] == "ip netns add %s" % name
    assert "mkdir -m 0755 /etc/netns/%s" % name in result["operations"]
    assert not netns_exists(name)
    assert not os.path.exists("/etc/netns/%s" % name)
    assert snapshot(netns, name) == before
    assert result["diff"]["before"]["exists"] is False
    assert result["diff"]["before"]["host_end"] is None
    assert result["diff"]["after"]["ns_end"] == {
        "name": NS_IF,
        "mtu": 1400,
        "state": "up",
        "addresses": ["10.201.0.2/24", "fd00:201::2/64"],
    }


@pytest.mark.parametrize("interpreter", ["venv", "debian"])
def test_present_packets_absent(request, module, four, netns, name, far_end, interpreter):
    python = request.getfixturevalue("debian_python") if interpreter == "debian" else None
    args = args_for(name, netns)

    real = four(MODULE, args, python=python)
    assert real["netns_veth"]["exists"] is True
    assert real["diff"]["after"] == real["netns_veth"]
    # The state the module reports is the state the kernel has.
    assert netns_exists(name)
    host, nse = link(netns, HOST_IF), link(name, NS_IF)
    assert host["linkinfo"]["info_kind"] == nse["linkinfo"]["info_kind"] == "veth"
    assert host["mtu"] == nse["mtu"] == 1400
    assert "UP" in host["flags"] and "UP" in nse["flags"] and "UP" in link(name, "lo")["flags"]
    assert addresses(netns, HOST_IF) == {"10.201.0.1/24", "fd00:201::1/64"}
    assert addresses(name, NS_IF) == {"10.201.0.2/24", "fd00:201::2/64"}
    ns_v6 = ip_json("-n", name, "-6", "addr", "show", "dev", NS_IF)[0]["addr_info"]
    assert not [a for a in ns_v6 if a["local"] == "fd00:201::2" and a.get("tentative")], ns_v6  # nodad
    assert Path("/etc/netns/%s/resolv.conf" % name).read_text().splitlines()[1:] == [
        "nameserver 192.0.2.53",
        "nameserver 2001:db8::53",
        "search example.test",
    ]
    assert oct(os.stat("/etc/netns/%s/resolv.conf" % name).st_mode & 0o777) == "0o644"

    # Packets: the peer reaches the namespace end over both families ...
    assert icmp_echo(netns, "10.201.0.2")
    assert icmp_echo(netns, "fd00:201::2")
    # ... and the namespace reaches far0's addresses only through its routes.
    assert route_get(name, far_end["v4"])["gateway"] == "10.201.0.1"
    assert route_get(name, far_end["v6"])["gateway"] == "fd00:201::1"
    assert icmp_echo(name, far_end["v4"])
    assert icmp_echo(name, far_end["v6"])

    # A kernel-made link-local address and connected routes exist but are not drift.
    assert any(a.startswith("fe80:") for a in addresses(name, NS_IF, keep_link_local=True))
    assert module(MODULE, args, check=True, python=python)["changed"] is False

    absent_args = {"name": name, "peer_netns": netns, "state": "absent", "veth": args["veth"]}
    gone = four(MODULE, absent_args, python=python)
    assert gone["operations"] == [
        "ip -n %s link del %s (deletes both ends)" % (name, NS_IF),
        "ip netns del %s" % name,
        "rm /etc/netns/%s/resolv.conf" % name,
        "rmdir /etc/netns/%s" % name,
    ]
    assert gone["diff"]["before"]["host_end"]["name"] == HOST_IF
    assert gone["diff"]["after"]["exists"] is False
    assert not netns_exists(name)
    assert not os.path.exists("/etc/netns/%s" % name)
    assert link_names(netns) == {"lo", "far0"}  # the pair is gone, the unrelated dummy is not
    assert addresses(netns, "far0") == {"198.51.100.7/32", "2001:db8:51::7/128"}
    assert netns_exists(netns)


def test_change_and_round_trip(module, four, netns, name, far_end):
    start = args_for(name, netns)
    four(MODULE, start)
    Path("/etc/netns/%s/hosts" % name).write_text("127.0.0.1 localhost\n")  # not ours: must survive absent

    changed = args_for(
        name,
        netns,
        veth={
            "host_name": HOST_IF,
            "ns_name": NS_IF,
            "host_addresses": ["10.201.0.1/24", "10.201.0.5/24", "fd00:201::1/64", "fd00:202::1/64"],
            "ns_addresses": ["10.201.0.2/24", "fd00:201::2/64", "fd00:202::2/64"],
            "mtu": 1380,
        },
        routes=[
            {"dest": "198.51.100.0/24", "via": "10.201.0.5"},  # new gateway
            {"dest": "2001:db8:51::/48", "via": "fd00:201::1", "metric": 300},  # new metric: new route
        ],
        resolv_conf={"content": "nameserver 192.0.2.54"},
    )
    real = four(MODULE, changed)
    ops = real["operations"]
    assert "ip -n %s link set dev %s mtu 1380" % (netns, HOST_IF) in ops
    assert "ip -n %s link set dev %s mtu 1380" % (name, NS_IF) in ops
    assert "ip -n %s address add 10.201.0.5/24 dev %s" % (netns, HOST_IF) in ops
    assert "ip -n %s address add fd00:202::2/64 dev %s nodad" % (name, NS_IF) in ops
    assert "ip -n %s route replace 198.51.100.0/24 via 10.201.0.5 dev %s metric 0" % (name, NS_IF) in ops
    assert "ip -n %s route del 2001:db8:51::/48 via fd00:201::1 dev %s metric 1024" % (name, NS_IF) in ops
    assert "ip -n %s route add 2001:db8:51::/48 via fd00:201::1 dev %s metric 300" % (name, NS_IF) in ops
    assert "write /etc/netns/%s/resolv.conf (mode 0644)" % name in ops
    assert real["diff"]["before"]["ns_end"]["mtu"] == 1400 and real["diff"]["after"]["ns_end"]["mtu"] == 1380
    assert real["diff"]["before"]["resolv_conf"]["content"] != real["diff"]["after"]["resolv_conf"]["content"]

    assert link(netns, HOST_IF)["mtu"] == link(name, NS_IF)["mtu"] == 1380
    assert addresses(netns, HOST_IF) == {"10.201.0.1/24", "10.201.0.5/24", "fd00:201::1/64", "fd00:202::1/64"}
    assert addresses(name, NS_IF) == {"10.201.0.2/24", "fd00:201::2/64", "fd00:202::2/64"}
    assert route_get(name, far_end["v4"])["gateway"] == "10.201.0.5"
    v6 = [(r["dst"], r.get("metric")) for r in routes(name, "-6") if r["dst"].startswith("2001:db8:51")]
    assert v6 == [("2001:db8:51::/48", 300)]
    assert Path("/etc/netns/%s/resolv.conf" % name).read_text() == "nameserver 192.0.2.54\n"
    assert icmp_echo(name, far_end["v4"]) and icmp_echo(name, far_end["v6"])

    # Round trip: back to the start, then nothing left to do.
    back = four(MODULE, start)
    assert "ip -n %s address del 10.201.0.5/24 dev %s" % (netns, HOST_IF) in back["operations"]
    assert addresses(netns, HOST_IF) == {"10.201.0.1/24", "fd00:201::1/64"}
    assert addresses(name, NS_IF) == {"10.201.0.2/24", "fd00:201::2/64"}
    assert link(name, NS_IF)["mtu"] == 1400
    assert route_get(name, far_end["v4"])["gateway"] == "10.201.0.1"

    gone = four(MODULE, {"name": name, "peer_netns": netns, "state": "absent"})
    assert "rmdir /etc/netns/%s" % name not in gone["operations"]
    assert sorted(os.listdir("/etc/netns/%s" % name)) == ["hosts"]
    assert not netns_exists(name)


def test_sysctls_only_inside_namespace(module, four, netns, name):
    keys = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
    peer_before = {key: sysctl(netns, key) for key in keys}
    own_before = {key: Path("/proc/sys/" + key.replace(".", "/")).read_text().strip() for key in keys}
    # New namespaces copy some of these from the host: set the opposite of what the peer has.
    wanted = {key: "0" if peer_before[key] == "1" else "1" for key in keys}
    wanted_ns_end = {"net.ipv6.conf.%s.accept_ra" % NS_IF: 0}
    real = four(MODULE, args_for(name, netns, sysctls=dict(wanted, **wanted_ns_end)))
    assert real["diff"]["after"]["sysctls"] == dict(wanted, **{"net.ipv6.conf.%s.accept_ra" % NS_IF: "0"})
    for key in keys:
        assert sysctl(name, key) == wanted[key]
    assert sysctl(name, "net.ipv6.conf.%s.accept_ra" % NS_IF) == "0"
    assert {key: sysctl(netns, key) for key in keys} == peer_before
    assert {key: Path("/proc/sys/" + key.replace(".", "/")).read_text().strip() for key in keys} == own_before


def test_kernel_extras_are_not_drift_and_unlisted_things_are_purged(module, four, netns, name):
    args = args_for(name, netns)
    four(MODULE, args)

    def ip_ns(*cmd):
        subprocess.run(["ip", "-n", name, *cmd], capture_output=True, text=True, check=True)

    ip_ns("address", "add", "10.201.0.99/24", "dev", NS_IF)
    ip_ns("route", "add", "203.0.113.0/24", "via", "10.201.0.1", "dev", NS_IF)
    # Not on the pair: a route through another device is not the module's to remove.
    add_unrelated_link(name, "other0")
    ip_ns("link", "set", "other0", "up")
    ip_ns("route", "add", "203.0.114.0/24", "dev", "other0")

    keep = module(MODULE, dict(args, purge_addresses=False), check=True)
    assert "ip -n %s address del 10.201.0.99/24 dev %s" % (name, NS_IF) not in keep["operations"]
    assert "10.201.0.99/24" in keep["diff"]["after"]["ns_end"]["addresses"]

    real = four(MODULE, args)
    assert real["operations"] == [
        "ip -n %s address del 10.201.0.99/24 dev %s" % (name, NS_IF),
        "ip -n %s address replace 10.201.0.2/24 dev %s" % (name, NS_IF),
        "ip -n %s route del 203.0.113.0/24 via 10.201.0.1 dev %s metric 0" % (name, NS_IF),
        "ip -n %s route replace 198.51.100.0/24 via 10.201.0.1 dev %s metric 0" % (name, NS_IF),
        "ip -n %s route replace 2001:db8:51::/48 via fd00:201::1 dev %s metric 1024" % (name, NS_IF),
    ]
    assert addresses(name, NS_IF) == {"10.201.0.2/24", "fd00:201::2/64"}
    assert any(a.startswith("fe80:") for a in addresses(name, NS_IF, keep_link_local=True))
    dests = {r["dst"] for r in routes(name)}
    assert "203.0.113.0/24" not in dests and "203.0.114.0/24" in dests and "10.201.0.0/24" in dests


def test_existing_namespace_is_adopted(module, four, netns, name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    real = four(MODULE, args_for(name, netns))
    assert "ip netns add %s" % name not in real["operations"]
    assert "ip -n %s link set dev lo up" % name in real["operations"]


# --------------------------------------------------------------------------- refusals
BAD = {
    "netns name": ({"name": "bad/name"}, "name 'bad/name' is invalid"),
    "peer is self": ({"peer_netns": "__name__"}, "peer_netns must differ from name"),
    "16-char host_name": ({"veth": {"host_name": "a234567890123456", "ns_name": NS_IF}}, "veth.host_name"),
    "bad ns_name": ({"veth": {"host_name": HOST_IF, "ns_name": "e th0"}}, "veth.ns_name"),
    "lo as ns_name": ({"veth": {"host_name": HOST_IF, "ns_name": "lo"}}, "cannot be 'lo'"),
    "bad address": (
        {"veth": {"host_name": HOST_IF, "ns_name": NS_IF, "host_addresses": ["10.0.0.300/24"]}},
        "10.0.0.300/24",
    ),
    "address without prefix": (
        {"veth": {"host_name": HOST_IF, "ns_name": NS_IF, "ns_addresses": ["10.0.0.1"]}},
        "a prefix length is required",
    ),
    "same address on both ends": (
        {
            "veth": {
                "host_name": HOST_IF,
                "ns_name": NS_IF,
                "host_addresses": ["10.0.0.1/24"],
                "ns_addresses": ["10.0.0.1/24"],
            }
        },
        "is on both ends",
    ),
    "mtu too small for IPv6": (
        {"veth": {"host_name": HOST_IF, "ns_name": NS_IF, "ns_addresses": ["fd00::1/64"], "mtu": 1000}},
        "below 1280",
    ),
    "route dest with host bits": ({"routes": [{"dest": "10.1.0.1/24", "via": "10.201.0.1"}]}, "has host bits set"),
    "route family mismatch": ({"routes": [{"dest": "10.1.0.0/24", "via": "fd00:201::1"}]}, "is not IPv4"),
    "default without via": ({"routes": [{"dest": "default"}]}, "dest 'default' needs via"),
    "route via off the ns end": (
        {"routes": [{"dest": "2001:db8:51::/48", "via": "fd00:999::1"}]},
        "routes[0]: via fd00:999::1 is in no network of veth.ns_addresses (10.201.0.2/24, fd00:201::2/64)",
    ),
    "host route via off the host end": (
        {"host_routes": [{"dest": "203.0.113.0/24", "via": "10.9.9.9"}]},
        "host_routes[0]: via 10.9.9.9 is in no network of veth.host_addresses",
    ),
    "route dev missing": ({"routes": [{"dest": "10.1.0.0/24", "dev": "nosuch0"}]}, "dev 'nosuch0' does not exist"),
    "sysctl outside net": ({"sysctls": {"kernel.hostname": "x"}}, "only net.* keys"),
    "sysctl path escape": ({"sysctls": {"net.ipv4.conf.//.x": 1}}, "is invalid"),
    "unknown sysctl": ({"sysctls": {"net.ipv4.no_such_knob": 1}}, "does not exist"),
    "bad nameserver": ({"resolv_conf": {"nameservers": ["dns.example"]}}, "nameservers entry 'dns.example'"),
    "missing peer": ({"peer_netns": "srt-does-not-exist"}, "peer_netns 'srt-does-not-exist' does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_without_change(module, netns, name, case):
    over, message = BAD[case]
    args = args_for(name, netns)
    args.update({k: (name if v == "__name__" else v) for k, v in over.items()})
    before = snapshot(netns, name)
    for check in (True, False):
        result = module(MODULE, args, check=check, expect_fail=True)
        assert message in result["msg"], result["msg"]
    assert snapshot(netns, name) == before
    assert not netns_exists(name)


def test_clash_with_dummy_in_peer_fails(module, netns, name):
    kind = add_unrelated_link(netns, HOST_IF)
    before = snapshot(netns, name)
    result = module(MODULE, args_for(name, netns), expect_fail=True)
    assert "already exists and is a %s interface, not a veth" % kind in result["msg"]
    assert snapshot(netns, name) == before
    assert not netns_exists(name)
    assert link(netns, HOST_IF)["linkinfo"]["info_kind"] == kind


def test_clash_with_dummy_in_namespace_fails(module, netns, name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    kind = add_unrelated_link(name, NS_IF)
    before = snapshot(netns, name)
    result = module(MODULE, args_for(name, netns), expect_fail=True)
    assert "interface 'eth0' in namespace %r already exists and is a %s" % (name, kind) in result["msg"]
    assert snapshot(netns, name) == before
    assert link_names(name) == {"lo", NS_IF}


def test_foreign_veth_is_not_hijacked(module, netns, name):
    # A veth pair entirely inside the peer namespace: HOST_IF's peer is not ours.
    subprocess.run(["ip", "-n", netns, "link", "add", HOST_IF, "type", "veth", "peer", "name", "other-end"], check=True)
    before = snapshot(netns, name)
    result = module(MODULE, args_for(name, netns), expect_fail=True)
    assert "is a veth whose peer is not 'eth0' in namespace %r" % name in result["msg"]
    assert snapshot(netns, name) == before
    # state=absent leaves it alone too, with a warning.
    gone = module(
        MODULE, {"name": name, "peer_netns": netns, "state": "absent", "veth": {"host_name": HOST_IF, "ns_name": NS_IF}}
    )
    assert gone["changed"] is False
    assert "left alone" in json.dumps(gone.get("warnings"))  # ansible-core 2.19 sends warnings as objects
    assert {HOST_IF, "other-end"} <= link_names(netns)


def test_pair_of_another_namespace_is_not_hijacked(module, four, netns, name):
    """The host end exists and is paired, but into a different namespace than NAME."""
    four(MODULE, args_for(name, netns))
    other = "srt-" + uuid.uuid4().hex[:10]
    try:
        result = module(MODULE, args_for(other, netns), expect_fail=True)
        assert "is a veth whose peer is not 'eth0' in namespace %r" % other in result["msg"]
        assert not netns_exists(other)
    finally:
        subprocess.run(["ip", "netns", "del", other], capture_output=True, check=False)


# --------------------------------------------------------------------------- issue 11: bad input
VETH = {"host_name": HOST_IF, "ns_name": NS_IF}
SCOPED = {
    # each address that reaches a file or a command; "%x\nX" would put a line X into resolv.conf
    "resolv_conf.nameservers": {"resolv_conf": {"nameservers": ["fd00::2%x\nX"]}},
    "veth.host_addresses": {"veth": dict(VETH, host_addresses=["fd00::1%x\nX/64"])},
    "veth.ns_addresses": {"veth": dict(VETH, ns_addresses=["fd00::2%x/64"])},
    "routes.dest": {"routes": [{"dest": "fd00:9::%x\nX/64", "via": "fd00:201::1"}]},
    "routes.via": {"routes": [{"dest": "2001:db8:51::/48", "via": "fd00:201::1%x\nX"}]},
    "host_routes.via": {"host_routes": [{"dest": "2001:db8:52::/48", "via": "fd00:201::2%eth0"}]},
}


@pytest.mark.parametrize("case", sorted(SCOPED))
def test_scope_ids_are_refused_before_anything_is_written(module, netns, name, case):
    args = args_for(name, netns)
    args.update(SCOPED[case])
    before = snapshot(netns, name)
    for check in (True, False):
        result = module(MODULE, args, check=check, expect_fail=True)
        assert "a scope id (%...) is not allowed here" in result["msg"], result["msg"]
        assert case.split(".")[0] in result["msg"]
    assert snapshot(netns, name) == before
    assert not os.path.exists("/etc/netns/%s/resolv.conf" % name)


@pytest.mark.parametrize("state", ["present", "absent"])
def test_stale_netns_file_is_refused_with_a_way_out(module, netns, name, state):
    """A plain file at /run/netns/NAME (no namespace mounted there) is named, with how to remove it."""
    path = "/run/netns/%s" % name
    open(path, "w").close()
    before = snapshot(netns, name)
    args = args_for(name, netns) if state == "present" else {"name": name, "peer_netns": netns, "state": "absent"}
    result = module(MODULE, args, expect_fail=True)
    assert "name %r: %s exists but is not a network namespace (a plain file" % (name, path) in result["msg"]
    assert "'ip netns delete %s'" % name in result["msg"]
    assert snapshot(netns, name) == before
    assert os.path.isfile(path) and not os.path.exists("/etc/netns/%s" % name)
    # the advice works, and then so does the module
    subprocess.run(["ip", "netns", "delete", name], check=True)
    if state == "present":
        module(MODULE, args)


def test_stale_peer_netns_file_is_refused(module, name):
    peer = "srt-" + uuid.uuid4().hex[:10]
    open("/run/netns/%s" % peer, "w").close()
    try:
        result = module(MODULE, args_for(name, peer), expect_fail=True)
        assert "peer_netns %r: /run/netns/%s exists but is not a network namespace" % (peer, peer) in result["msg"]
        assert not netns_exists(name)
    finally:
        os.unlink("/run/netns/%s" % peer)


@pytest.mark.parametrize(
    ("over", "message"), [({"name": ""}, "name '' is invalid"), ({"peer_netns": ""}, "peer_netns '' is invalid")]
)
def test_empty_namespace_names_are_refused(module, netns, name, over, message):
    before = snapshot(netns, name)
    result = module(MODULE, dict(args_for(name, netns), **over), expect_fail=True)
    assert message in result["msg"]
    assert snapshot(netns, name) == before


WRONG_TYPES = {
    "name as a list": ({"name": ["vpn"]}, "name: must be a string, not list"),
    "veth as a string": ({"veth": "vh-test"}, "veth: must be a dictionary, not str"),
    "host_name as a dict": ({"veth": dict(VETH, host_name={"a": 1})}, "veth.host_name: must be a string, not dict"),
    "ns_addresses as a string": (
        {"veth": dict(VETH, ns_addresses="10.201.0.2/24")},
        "veth.ns_addresses: must be a list, not str",
    ),
    "host_addresses as a number": ({"veth": dict(VETH, host_addresses=5)}, "veth.host_addresses: must be a list"),
    "routes as a dict": ({"routes": {"dest": "198.51.100.0/24"}}, "routes: must be a list, not dict"),
    "route dest as a list": ({"routes": [{"dest": ["198.51.100.0/24"]}]}, "routes[0].dest: must be a string, not list"),
    "route via as a dict": (
        {"host_routes": [{"dest": "198.51.100.0/24", "via": {"a": 1}}]},
        "host_routes[0].via: must be a string, not dict",
    ),
    "sysctls as a list": ({"sysctls": ["net.ipv4.ip_forward=1"]}, "sysctls: must be a dictionary, not list"),
    "nameservers as a string": (
        {"resolv_conf": {"nameservers": "192.0.2.53"}},
        "resolv_conf.nameservers: must be a list, not str",
    ),
    "nameserver as a list": (
        {"resolv_conf": {"nameservers": [["192.0.2.53"]]}},
        "resolv_conf.nameservers[0]: must be a string, not list",
    ),
    "search as a number": ({"resolv_conf": {"search": 5}}, "resolv_conf.search: must be a list, not int"),
    "content as a list": (
        {"resolv_conf": {"content": ["nameserver 192.0.2.53"]}},
        "resolv_conf.content: must be a string",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_types_are_named(module, netns, name, case):
    over, message = WRONG_TYPES[case]
    before = snapshot(netns, name)
    result = module(MODULE, dict(args_for(name, netns), **over), expect_fail=True)
    assert message in result["msg"], result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert snapshot(netns, name) == before
