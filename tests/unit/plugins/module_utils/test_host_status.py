"""splitroute status / metrics (module_utils/_host_status.py): settings from the roles' plans, sets
matched to their tunnel by mark whatever they are called, keys never kept, the textfile path checked.

The commands themselves run on the real kernel in tests/integration/test_status_play.py."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
import yaml
from host_program import install, run, write_plan  # tests/host_program.py
from prometheus_text import parse_metrics  # tests/prometheus_text.py

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan, gateway_plan_file
from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _host_status, _status

ROOT = Path(__file__).resolve().parents[4]
PRIVATE = "kPD5UOb8RV6c0OLEkbGWxUg0mmVrqOpRAexDcHxvV0M="
PSK = "Zb2B/gFh7cNPTkc7bqHj1IFSmXW6dTVNvJuKMEQ0AE0="
PUBLIC = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

# The client role's plan file as the client role writes it (only what the status reads is agreed on:
# the tunnels' names, tables, priorities and marks, and the nft table's name).
CLIENT_PLAN = {
    "role": "client",
    "version": _host.PLAN_VERSION,
    "settings": {"priority_base": 1500, "table_base": 300},
    "tunnels": [
        {"name": "gw", "fwmark": 7, "table": 300, "priority": 1500, "sets4": ["gw_v4_a", "gw_v4_b"]},
        {"name": "second", "fwmark": 8, "table": 301, "priority": 1510},
    ],
    "nft": {"table": "splitroute"},
}


def gateway_file(**settings):
    plan = gateway_plan(
        [{"name": "laptop", "address": "10.4.0.10", "public_key": PUBLIC, "preshared_key": PSK}],
        [{"range": "10.4.0.0/25", "exit": "direct"}, {"range": "10.4.0.128/25", "exit": "provider"}],
        [{"name": "provider", "server": "198.51.100.30", "config": "client\n", "username": "u", "password": "pw"}],
        dict({"address": "10.4.0.1/24", "interface": "wg5", "table_base": 220, "priority_base": 2200}, **settings),
    )
    return json.loads(json.dumps(gateway_plan_file(plan, "splitroute_gateway")))


def test_the_settings_come_from_the_plans():
    config = _host_status.settings({"client": CLIENT_PLAN, "gateway": gateway_file()}, host="gw-1")
    assert config == {
        "host": "gw-1",
        "client_table": "splitroute",
        "client_priority_base": 1500,
        "client_tunnels": ["gw", "second"],
        "client_marks": {"gw": 7, "second": 8},
        "gateway_table": "splitroute_gateway",
        "gateway_priority_base": 2200,
        "gateway_table_base": 220,
        "gateway_interface": "wg5",
        "gateway_peers": [{"name": "laptop", "public_key": PUBLIC, "address": "10.4.0.10"}],
        "gateway_providers": ["provider"],
    }
    assert _host_status.settings({"client": None, "gateway": None}, host="x") == {"host": "x"}


@pytest.mark.parametrize(
    "plan",
    [
        {"role": "client", "version": 1, "tunnels": "gw"},
        {"role": "client", "version": 1, "tunnels": [{"name": ["gw"], "fwmark": "x"}, "junk", None]},
        {"role": "client", "version": 1, "settings": [], "nft": "splitroute", "tunnels": [{"fwmark": True}]},
        {"role": "client", "version": 1, "settings": {"priority_base": "high"}, "nft": {"table": "a b"}},
    ],
)
def test_a_client_plan_of_another_shape_is_read_as_far_as_it_goes(plan):
    """Whatever the plan holds, the report is made: a wrong value is a note, never a traceback."""
    config = _host_status.settings({"client": plan}, host="h")
    report = _status.status_report({}, config)
    assert report["lines"][0].startswith("h: client not configured")
    assert _host_status._table_name(config.get("client_table"), "splitroute") in ("splitroute",)


def nft_two_generations():
    """The client's table with each tunnel's dnsmasq sets in two generations, marked 0x7."""
    items = [{"table": {"family": "inet", "name": "splitroute"}}]
    for name, count in (("gw_v4_a", 3), ("gw_v4_b", 1), ("gw_v6_a", 0), ("gw_v6_b", 2), ("gw_net4", 1)):
        elems = ["198.51.100.%d" % i for i in range(count)]
        items.append({"set": {"family": "inet", "table": "splitroute", "name": name, "type": "ipv4_addr",
                              "elem": elems}})  # fmt: skip
        items.append({"rule": {"expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@" + name}},
            {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 7}},
        ]}})  # fmt: skip
    return {"rc": 0, "stdout": json.dumps({"nftables": items}), "stderr": ""}


def client_raw():
    rule = {"priority": 1500, "src": "all", "fwmark": "0x7", "table": "300"}
    routes = [
        {"type": "unicast", "dst": "default", "dev": "gw", "table": "300", "metric": 10},
        {"type": "blackhole", "dst": "default", "table": "300", "metric": 100},
    ]
    ok = {"rc": 0, "stderr": ""}
    return {
        "now": dict(ok, stdout="1700000100\n"),
        "wg": dict(
            ok,
            stdout="gw\t(hidden)\t%s\t51820\toff\ngw\t%s\t(hidden)\t192.0.2.1:51820\t0.0.0.0/0\t"
            "1700000000\t10\t20\t25\n" % (PUBLIC, PUBLIC),
        ),
        "links": dict(ok, stdout=json.dumps([{"ifname": "gw", "flags": ["POINTOPOINT", "UP"]}])),
        "rules4": dict(ok, stdout=json.dumps([rule])),
        "rules6": dict(ok, stdout=json.dumps([rule])),
        "routes4": dict(ok, stdout=json.dumps(routes)),
        "routes6": dict(ok, stdout=json.dumps(routes)),
        "netns": dict(ok, stdout=""),
        "nft_client": nft_two_generations(),
        "nft_gateway": {"rc": 1, "stdout": "", "stderr": "Error: No such file or directory\n"},
    }


def test_the_sets_of_two_generations_are_their_tunnels_by_mark():
    config = _host_status.settings({"client": dict(CLIENT_PLAN, tunnels=CLIENT_PLAN["tunnels"][:1])}, host="laptop")
    report = _status.status_report(client_raw(), config)
    (tunnel,) = report["client"]["tunnels"]
    assert tunnel["name"] == "gw" and tunnel["mark"] == 7
    assert [(s["name"], s["elements"]) for s in tunnel["sets"]] == [
        ("gw_net4", 1), ("gw_v4_a", 3), ("gw_v4_b", 1), ("gw_v6_a", 0), ("gw_v6_b", 2),
    ]  # fmt: skip
    assert tunnel["elements"] == 7
    assert report["problems"] == [], report["lines"]
    samples = parse_metrics(report["metrics"])
    assert samples[("splitroute_set_elements", frozenset({"host": "laptop", "table": "splitroute",
                                                          "set": "gw_v4_a"}.items()))] == 3  # fmt: skip
    age = {"host": "laptop", "interface": "gw"}
    assert samples[("splitroute_tunnel_handshake_age_seconds", frozenset(age.items()))] == 100
    peer = dict(age, peer=PUBLIC, name="")
    assert samples[("splitroute_peer_handshake_age_seconds", frozenset(peer.items()))] == 100


def test_without_the_plans_marks_a_set_is_the_tunnel_its_name_says():
    """(the filter's inventory settings have no marks: NAME_v4, NAME_v6, NAME_net4, NAME_net6 only)"""
    report = _status.status_report(client_raw(), {"client_priority_base": 1500})
    (tunnel,) = report["client"]["tunnels"]
    assert [s["name"] for s in tunnel["sets"]] == ["gw_net4"]
    assert len(report["client"]["sets"]) == 5


def test_the_dump_loses_its_keys_before_it_is_read():
    dump = "gw\t%s\t%s\t51820\toff\ngw\t%s\t%s\t(none)\t10.0.0.2/32\t0\t0\t0\toff\n" % (PRIVATE, PUBLIC, PUBLIC, PSK)
    redacted = _status.redact_wg_dump(dump)
    assert PRIVATE not in redacted and PSK not in redacted
    assert redacted.split("\n", maxsplit=1)[0].split("\t") == ["gw", "(hidden)", PUBLIC, "51820", "off"]
    assert redacted.split("\n")[1].split("\t")[:3] == ["gw", PUBLIC, "(hidden)"]
    none = "gw\t(none)\t(none)\t0\toff"
    assert _status.redact_wg_dump(none) == none


@pytest.fixture
def program(tmp_path):
    return install(tmp_path)


@pytest.mark.parametrize(
    "path",
    ["relative.prom", "/var/lib/x.txt", "/var/lib/a b.prom", "/var/lib/%h.prom", "/var/../etc/x.prom", "/x/\n.prom"],
)
def test_the_textfile_path_is_checked_before_anything_runs(program, tmp_path, path):
    prog, plans = program
    proc = run(prog, plans, "metrics", "--textfile", path)
    assert (
        proc.returncode == 1
        and "--textfile" in proc.stderr
        and "must be an absolute path ending in .prom" in (proc.stderr)
    )
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_status_and_metrics_without_any_plan(program, tmp_path, netns):
    """In an empty namespace: a host with neither role is reported as it is, nothing is missing."""
    prog, plans = program
    # its directory is not there yet: the program makes it (node-exporter's package may come later)
    textfile = tmp_path / "out" / "node-exporter" / "splitroute.prom"
    proc = run(prog, plans, "status", "--host", "bare", netns=netns)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[1:] == [
        "client: not configured (no nft table inet splitroute, no rules at priorities 1000-1099)",
        "gateway: not configured (no nft table inet splitroute_gateway, no rules at priorities 2000-2199)",
        "",
    ]
    assert proc.stdout.startswith("bare: client not configured, gateway not configured, no problems (at ")
    report = json.loads(run(prog, plans, "status", "--json", "--host", "bare", netns=netns).stdout)
    assert report["host"] == "bare" and report["errors"] == [] and report["unreadable"] == []
    assert report["lines"] == proc.stdout.split("\n")[:-1] or report["lines"][1:] == proc.stdout.split("\n")[1:-1]
    proc = run(prog, plans, "metrics", "--host", "bare", "--textfile", str(textfile), netns=netns)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    assert stat.S_IMODE(textfile.parent.stat().st_mode) == 0o755
    assert [p.name for p in textfile.parent.iterdir()] == ["splitroute.prom"]
    samples = parse_metrics(textfile.read_text())
    assert samples[("splitroute_client_configured", frozenset({"host": "bare"}.items()))] == 0
    assert samples[("splitroute_gateway_configured", frozenset({"host": "bare"}.items()))] == 0
    proc = run(prog, plans, "metrics", "--host", "bare", netns=netns)
    assert proc.returncode == 0 and parse_metrics(proc.stdout)


def test_a_bad_host_label_and_a_bad_plan_are_refused(program):
    prog, plans = program
    proc = run(prog, plans, "status", "--host", "a\x01b")
    assert proc.returncode == 1 and "--host" in proc.stderr and "Traceback" not in proc.stderr
    write_plan(plans, "gateway", {"role": "gateway", "version": 99})
    proc = run(prog, plans, "metrics")
    assert proc.returncode == 2 and "plan version 99" in proc.stderr and proc.stdout == ""


def test_the_host_wide_commands_are_offered_once(program):
    prog, plans = program
    proc = run(prog, plans, "--help")
    assert proc.returncode == 0
    assert "status" in proc.stdout and "metrics" in proc.stdout
    assert set(_host.host_commands()) == {"status", "metrics"}


@pytest.mark.parametrize(
    "path",
    ["/var/lib/prometheus/node-exporter/splitroute.prom", "/run/x.prom", "/a/b c.prom", "/a/%h.prom", "/a/./x.prom",
     "/a/../x.prom", "/a/.x.prom.tmp", "x.prom", "/a/x.prom\n", "/a/x", "/a/\"x\".prom", "/.prom", "/a/b\\x.prom"],
)  # fmt: skip
def test_the_runtime_role_checks_the_textfile_as_the_program_does(path):
    """roles/runtime refuses before any change what `splitroute metrics --textfile` would refuse on the host
    (its value reaches the unit's command line: no space, quote, backslash, % specifier)."""
    role_vars = yaml.safe_load((ROOT / "roles" / "runtime" / "vars" / "main.yml").read_text())
    role = re.match(role_vars["__splitroute_runtime_textfile_re"], path) is not None
    program = bool(_host_status.TEXTFILE.fullmatch(path)) and "/../" not in path and "/./" not in path
    assert role == program
