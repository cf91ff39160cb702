"""The gateway's part of the host program: `splitroute --role gateway boot` against the real kernel,
run by the host's Python without ansible, as splitroute-gateway.service runs it at boot; and the
program's --role option (a host with both roles runs only the unit's role).

The program runs inside the throwaway namespace of the `netns` fixture, entered with nsenter
--net only (the host's mount namespace, as systemd runs it: a namespace the boot creates must
outlive the program). Its providers' namespaces get names no other test uses and are removed
afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from host_program import ENV, install, run  # tests/host_program.py

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan, gateway_plan_file
from ansible_collections.splitroute.vpn.plugins.module_utils import _names

PYTHON = "/usr/bin/python3"  # the host's (host_program.PYTHON)
KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SETTINGS = {"address": "10.4.0.1/24", "address6": "fd10:4::1/64", "table_base": 200, "priority_base": 2000,
            "local_networks": ["172.31.0.0/16"]}  # fmt: skip

GATEWAY_NFT = """table inet splitroute_gateway {}
delete table inet splitroute_gateway
table inet splitroute_gateway {
  chain forward { type filter hook forward priority filter; policy drop; }
}
"""
NETNS_NFT = """table ip splitroute_gateway {}
delete table ip splitroute_gateway
table ip splitroute_gateway {
  chain forward { type filter hook forward priority filter; policy drop; }
}
"""


@pytest.fixture
def providers():
    """Two provider names no other test uses; their namespaces are removed afterwards."""
    names = ["t%s" % uuid.uuid4().hex[:7] for _i in range(2)]
    yield names
    for name in names:
        subprocess.run(["ip", "netns", "del", _names.provider_netns(name)], capture_output=True, check=False)


def blackholes(table):
    """The blackhole routes of a table's listing, as "blackhole default metric N" (IPv6 lists them
    with dev lo)."""
    lines = [line for line in table.splitlines() if line.startswith("blackhole")]
    return [re.sub(r" dev lo| pref medium", "", line).strip() for line in lines]


def _exists(netns):
    return subprocess.run(["ip", "netns", "pids", netns], capture_output=True, check=False).returncode == 0


def host_plan(tmp_path, providers):
    classes = [
        {"range": "10.4.0.0/25", "range6": "fd10:4::/116", "exit": "direct"},
        {"range": "10.4.0.128/26", "range6": "fd10:4::1000/116", "exit": providers[0]},
        {"range": "10.4.0.192/26", "range6": "fd10:4::2000/116", "exit": providers[1]},
    ]
    provs = [{"name": n, "server": "198.51.100.%d" % (30 + i), "config": "client\n"} for i, n in enumerate(providers)]
    peers = [{"name": "laptop", "address": "10.4.0.10", "public_key": KEY1}]
    plan = json.loads(json.dumps(gateway_plan_file(gateway_plan(peers, classes, provs, SETTINGS))))
    # the nftables files under TMP instead of /etc/splitroute-gateway
    plan["nft_file"] = str(tmp_path / "gateway.nft")
    (tmp_path / "gateway.nft").write_text(GATEWAY_NFT)
    for ns in plan["namespaces"]:
        ns["nft_file"] = str(tmp_path / ("netns-%s.nft" % ns["provider"]))
        (tmp_path / ("netns-%s.nft" % ns["provider"])).write_text(NETNS_NFT)
    return plan


@pytest.fixture
def installed(tmp_path):
    return install(tmp_path)


def boot(netns, program, plans):
    """`splitroute --role gateway boot` in NETNS (network namespace only), the host's Python, no ansible."""
    return subprocess.run(
        ["nsenter", "--net=/run/netns/%s" % netns, PYTHON, "-I", str(program), "--plan-dir", str(plans),
         "--role", "gateway", "boot"],
        capture_output=True, text=True, check=False, env=ENV,
    )  # fmt: skip


def ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def links(*where):
    """name -> (admin up, addresses) of the links of a namespace. The carrier and the IPv6
    link-local address come later, from the kernel: they are not compared."""
    out = {}
    for link in json.loads(ip(*where, "-j", "addr")):
        addrs = sorted(
            "%s/%d" % (a["local"], a["prefixlen"]) for a in link.get("addr_info", []) if a.get("scope") != "link"
        )
        out[link["ifname"]] = ("UP" in link["flags"], addrs)
    return out


def state(netns, plan):
    """What the boot made, as text: forwarding, rules, the providers' tables, each namespace's
    links, addresses, routes, forwarding and nftables table."""
    out = {}
    for family in ("-4", "-6"):
        out["rules" + family] = ip("-n", netns, family, "rule")
        for table in plan["scope"]["tables"]:
            out["table%s%s" % (family, table)] = ip("-n", netns, family, "route", "show", "table", table)
    out["links"] = links("-n", netns)
    for key in plan["sysctls"]:
        out[key] = ip("netns", "exec", netns, "sysctl", "-n", key)
    for ns in plan["namespaces"]:
        name = ns["name"]
        out[name + " links"] = links("-n", name)
        for family in ("-4", "-6"):
            out[name + " route" + family] = ip("-n", name, family, "route")
        for key in ns["sysctls"]:
            out[name + " " + key] = ip("netns", "exec", name, "sysctl", "-n", key)
        out[name + " nft"] = ip("netns", "exec", name, "nft", "list", "tables")
    out["nft"] = ip("netns", "exec", netns, "nft", "list", "tables")
    return out


def test_boot_makes_namespaces_veths_routes_and_rules_from_nothing(installed, tmp_path, netns, providers):
    program, plans = installed
    plan = host_plan(tmp_path, providers)
    (plans / "gateway.json").write_text(json.dumps(plan))
    assert not [ns for ns in plan["namespaces"] if _exists(ns["name"])]
    proc = boot(netns, program, plans)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    got = state(netns, plan)
    assert got["net.ipv4.ip_forward"].strip() == "1" and got["net.ipv6.conf.all.forwarding"].strip() == "1"
    assert "inet splitroute_gateway" in got["nft"]
    first, second = plan["providers"]
    for prov, table in ((first, "200"), (second, "201")):
        name = prov["netns"]
        assert "10.4.0.0/24 via %s dev srgw0" % prov["host_address"] in got[name + " route-4"]
        assert "%s via %s dev srgw0" % (prov["server"], prov["host_address"]) in got[name + " route-4"]
        assert "fd10:4::/64 via %s dev srgw0" % prov["host_address6"] in got[name + " route-6"]
        up, addrs = got[name + " links"]["srgw0"]
        assert up and addrs == sorted(["%s/30" % prov["ns_address"], "%s/126" % prov["ns_address6"]])
        assert got[name + " links"]["lo"][0]
        assert got[name + " net.ipv4.ip_forward"].strip() == "1"
        assert got[name + " net.ipv6.conf.all.forwarding"].strip() == "1"
        assert "ip splitroute_gateway" in got[name + " nft"]
        up, addrs = got["links"][prov["host_veth"]]
        assert up and addrs == sorted(["%s/30" % prov["host_address"], "%s/126" % prov["host_address6"]])
        assert "default via %s dev %s metric 10" % (prov["ns_address"], prov["host_veth"]) in got["table-4" + table]
        assert blackholes(got["table-4" + table]) == ["blackhole default metric 100"]
        assert "default via %s dev %s metric 10" % (prov["ns_address6"], prov["host_veth"]) in got["table-6" + table]
        assert blackholes(got["table-6" + table]) == ["blackhole default metric 100"]
        assert "from %s lookup %s" % (prov["host_address"], table) in got["rules-4"]
        assert "from %s lookup %s" % (prov["ranges"][0], table) in got["rules-4"]
        assert "from %s lookup %s" % (prov["ranges6"][0], table) in got["rules-6"]
    assert "2000:\tfrom 10.4.0.0/24 to 10.4.0.0/24 lookup main" in got["rules-4"]
    assert "2001:\tfrom 10.4.0.0/24 to 172.31.0.0/16 lookup main" in got["rules-4"]
    assert "2000:\tfrom fd10:4::/64 to fd10:4::/64 lookup main" in got["rules-6"]


def test_a_second_boot_changes_nothing(installed, tmp_path, netns, providers):
    program, plans = installed
    plan = host_plan(tmp_path, providers)
    (plans / "gateway.json").write_text(json.dumps(plan))
    assert boot(netns, program, plans).returncode == 0
    before = state(netns, plan)
    proc = boot(netns, program, plans)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no operation logged: nothing was changed
    assert state(netns, plan) == before


def test_a_provider_table_keeps_its_blackhole_and_boot_puts_the_pair_back(installed, tmp_path, netns, providers):
    """With the veth pair gone (the route into the namespace goes with it), the table still
    blackholes the class: nothing leaves by the main table. The next boot restores the pair."""
    program, plans = installed
    plan = host_plan(tmp_path, providers)
    (plans / "gateway.json").write_text(json.dumps(plan))
    assert boot(netns, program, plans).returncode == 0
    before = state(netns, plan)
    prov = plan["providers"][0]
    ip("-n", netns, "link", "del", prov["host_veth"])
    for family in ("-4", "-6"):
        table = ip("-n", netns, family, "route", "show", "table", "200")
        assert blackholes(table) == ["blackhole default metric 100"] and len(table.splitlines()) == 1, table
    proc = boot(netns, program, plans)
    assert proc.returncode == 0, proc.stderr
    assert "srgw-" in proc.stderr  # the pair was made again
    assert state(netns, plan) == before


def test_boot_with_a_broken_namespace_table_names_the_file(installed, tmp_path, netns, providers):
    program, plans = installed
    plan = host_plan(tmp_path, providers)
    (plans / "gateway.json").write_text(json.dumps(plan))
    broken = plan["namespaces"][0]["nft_file"]
    (tmp_path / broken.rsplit("/", 1)[1]).write_text("table ip splitroute_gateway { bogus }\n")
    proc = boot(netns, program, plans)
    assert proc.returncode == 1
    assert "splitroute boot (gateway):" in proc.stderr and broken in proc.stderr
    assert "Traceback" not in proc.stderr


def test_boot_of_a_plan_from_an_earlier_release_asks_for_a_run_of_the_role(installed, tmp_path, netns, providers):
    program, plans = installed
    plan = host_plan(tmp_path, providers)
    for key in ("namespaces", "sysctls"):
        del plan[key]
    (plans / "gateway.json").write_text(json.dumps(plan))
    proc = boot(netns, program, plans)
    assert proc.returncode == 1
    assert "the plan has no sysctls, namespaces: run the role again" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- --role


def test_role_runs_only_that_role_and_needs_its_plan(installed, tmp_path, providers):
    program, plans = installed
    # a client plan that would fail if its boot ran (its table file does not exist)
    (plans / "client.json").write_text(json.dumps({"role": "client", "version": 1, "nft": {"file": "/nonexistent"}}))
    proc = run(program, plans, "--role", "gateway", "boot")
    assert proc.returncode == 2
    assert "role gateway has no plan on this host (%s)" % (plans / "gateway.json") in proc.stderr
    proc = run(program, plans, "--role", "gateway", "rotate")
    assert proc.returncode == 2 and "role gateway has no command rotate" in proc.stderr
    proc = run(program, plans, "--role", "client", "status")
    assert proc.returncode == 2 and "--role applies to a role's commands" in proc.stderr
    # with --role, another role's plan is not even read (a broken one does not stop the boot)
    (plans / "client.json").write_text("{")
    (plans / "gateway.json").write_text(json.dumps(host_plan(tmp_path, providers)))
    proc = run(program, plans, "--role", "client", "boot")
    assert proc.returncode == 2 and "cannot be read" in proc.stderr
    proc = run(program, plans, "--role", "nobody", "boot")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_units_run_their_own_role():
    root = Path(__file__).resolve().parents[4] / "roles"
    for unit, line in (
        ("gateway/templates/splitroute-gateway.service.j2", "ExecStart=/usr/sbin/splitroute --role gateway boot"),
        ("client/templates/splitroute-client.service.j2", "ExecStart=/usr/sbin/splitroute --role client boot"),
        ("client/templates/splitroute-client-rotate.service.j2",
         "ExecStart=/usr/sbin/splitroute --role client rotate"),
    ):  # fmt: skip
        execs = [x for x in (root / unit).read_text().splitlines() if x.startswith("ExecStart")]
        assert execs == [line], unit
