"""The client's part of the host program: the sets' rotation (arithmetic with a fake clock, and
`splitroute rotate` against real nftables in a throwaway namespace), `splitroute boot` (table,
rules and blackholes in a namespace, run by the host's Python without ansible) and pruning."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from host_program import install, run  # tests/host_program.py

from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _host_client, _names

ROOT = Path(__file__).resolve().parents[4]


# ---------------------------------------------------------------- rotation arithmetic (fake clock)


def test_the_period_covers_the_front_cache_twice_and_the_client_once():
    assert _host_client.rotation_period(300, 300) == 2 * 300 + 300 + _host_client.ROTATE_MARGIN
    rot = _host_client.rotation(5, 5)
    assert rot == {"period": 20, "interval": 2, "removal_bound": 44}
    assert _host_client.rotation(3600, 3600)["interval"] == 60


def test_rotate_step_alternates_and_keeps_flushes_a_period_apart():
    gen, state = _host_client.rotate_step(None, 100.0, 20)
    assert gen is None and state == {"since": 100.0, "next": "a"}  # both count as flushed now
    assert _host_client.rotate_step(state, 119.9, 20) == (None, state)
    gen, state = _host_client.rotate_step(state, 120.0, 20)
    assert (gen, state) == ("a", {"since": 120.0, "next": "b"})
    gen, state = _host_client.rotate_step(state, 150.0, 20)
    assert (gen, state) == ("b", {"since": 150.0, "next": "a"})
    # a state from another boot (a time in the future) or a broken one starts afresh, flushing nothing
    for bad in ({"since": 999.0, "next": "a"}, {"since": True, "next": "a"}, {"since": 1, "next": "c"}, []):
        assert _host_client.rotate_step(bad, 160.0, 20) == (None, {"since": 160.0, "next": "a"})


def simulate(max_cache_ttl, max_ttl, answers, timer_jitter, seed):
    """A timeline with a fake clock: the timer asks every INTERVAL (plus jitter, as late as a busy host
    is), rotate_step decides; each answer (time) puts the address in both generations. Returns
    the flushes and, per answer, until when the address stayed in at least one generation."""
    rng = random.Random(seed)
    rot = _host_client.rotation(max_cache_ttl, max_ttl)
    period, interval = rot["period"], rot["interval"]
    added = {"a": [], "b": []}  # answer times still in each generation
    state, now, flushes = None, 0.0, []
    left = {}  # answer time -> time it left its last generation
    horizon = max(answers) + 4 * period
    events = sorted(answers)
    while now < horizon:
        while events and events[0] <= now:
            t = events.pop(0)
            added["a"].append(t)
            added["b"].append(t)
        gen, state = _host_client.rotate_step(state, now, period)
        if gen is not None:
            flushes.append((now, gen))
            other = "b" if gen == "a" else "a"
            for t in added[gen]:
                if t not in added[other]:
                    left.setdefault(t, now)
            added[gen] = []
        now += interval + rng.uniform(0, timer_jitter)
    return flushes, left, rot


@pytest.mark.parametrize("seed", range(5))
def test_no_answer_outlives_its_address_and_a_dropped_one_goes_within_the_bound(seed):
    max_cache_ttl, max_ttl = 5, 5
    rng = random.Random(seed)
    answers = sorted(rng.uniform(0, 200) for _i in range(30))
    flushes, left, rot = simulate(max_cache_ttl, max_ttl, answers, timer_jitter=1.0, seed=seed)
    gaps = [b[0] - a[0] for a, b in zip(flushes, flushes[1:])]
    assert gaps and min(gaps) >= rot["period"]
    assert [g for _t, g in flushes[:4]] == ["a", "b", "a", "b"]
    # an answer handed out from the front cache up to max-cache-ttl after the back resolver's, then
    # used by the client for max-ttl: the address must stay at least that long after the answer
    for t in answers:
        assert left[t] >= t + 2 * max_cache_ttl + max_ttl, (t, left[t], flushes)
    # ... and no longer than the documented bound after the last answer (the timer on time)
    _flushes, left_on_time, _left_late = simulate(max_cache_ttl, max_ttl, answers, timer_jitter=0.0, seed=seed)
    assert max(left_on_time[t] - t for t in answers) <= rot["removal_bound"]


def test_with_one_generation_the_same_timeline_would_leak():
    """The check above is not vacuous: flushing a single set on the same clock drops addresses whose
    answer is still in use."""
    period = _host_client.rotation_period(5, 5)
    flushes = [period * k for k in range(1, 10)]
    answer = flushes[2] - 1  # just before a flush
    next_flush = min(f for f in flushes if f > answer)
    assert next_flush < answer + 2 * 5 + 5


# ---------------------------------------------------------------- the installed program, real kernel


@pytest.fixture
def installed(tmp_path):
    """The program as roles/runtime lays it out, under TMP, run by the host's Python (no ansible)."""
    return install(tmp_path)


def host_plan(tmp_path, tunnels=("wg0", "wg1")):
    plan = {
        "role": "client",
        "version": _host.PLAN_VERSION,
        "tunnels": [
            {"name": n, "table": 100 + i, "priority": 1000 + 10 * i, "fwmark": i + 1} for i, n in enumerate(tunnels)
        ],
        "nft": {"table": _names.NFT_TABLE, "file": str(tmp_path / "client.nft")},
        "paths": {
            "rotate_state": str(tmp_path / "run" / "client-rotate.json"),
            "front_servers": str(tmp_path / "dns" / "front-servers.conf"),
            "front_base": str(tmp_path / "dns" / "front-base.conf"),
        },
        "lists": {"dir": str(tmp_path / "lists")},
        "rotation": _host_client.rotation(5, 5),
        "rules": [
            {"priority": 1000 + 10 * i, "fwmark": str(i + 1), "table": str(100 + i)} for i in range(len(tunnels))
        ],
        "boot_routes": [
            {"table": str(100 + i), "dest": "default", "type": "blackhole", "metric": 100} for i in range(len(tunnels))
        ],
    }
    sets = "".join(
        "  set %s { type ipv%d_addr; flags timeout; timeout 1h; }\n" % (s, f)
        for n in tunnels
        for f in (4, 6)
        for s in _names.dns_sets(n, f)
    ) + "".join(
        "  set %s { type ipv%d_addr; flags interval; }\n" % (_names.src_set(n, f), f) for n in tunnels for f in (4, 6)
    )
    (tmp_path / "client.nft").write_text("table inet splitroute {\n%s}\n" % sets.replace("ipv6_addr", "ipv6_addr"))
    return plan


def run_in(netns, program, plans, *args):
    return run(program, plans, *args, netns=netns)


def elements(nsexec, name):
    data = json.loads(nsexec("nft", "-j", "list", "set", "inet", "splitroute", name).stdout)
    out = []
    for item in data["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            out.append(elem["elem"]["val"] if isinstance(elem, dict) else elem)
    return out


def test_rotate_flushes_one_generation_at_a_time_in_a_namespace(installed, tmp_path, netns, nsexec):
    program, plans = installed
    plan = host_plan(tmp_path)
    (plans / "client.json").write_text(json.dumps(plan))
    nsexec("nft", "-f", plan["nft"]["file"])

    def fill():
        for name in ("wg0", "wg1"):
            for gen in ("a", "b"):
                nsexec("nft", "add element inet splitroute %s_v4_%s { 192.0.2.1 }" % (name, gen))
                nsexec("nft", "add element inet splitroute %s_v6_%s { 2001:db8::1 }" % (name, gen))

    def contents():
        return {s: elements(nsexec, s) for n in ("wg0", "wg1") for f in (4, 6) for s in _names.dns_sets(n, f)}

    state_file = Path(plan["paths"]["rotate_state"])
    fill()
    proc = run_in(netns, program, plans, "rotate")
    assert proc.returncode == 0, proc.stderr
    state = json.loads(state_file.read_text())
    assert state["next"] == "a"  # first run: nothing flushed, both generations start now
    assert all(contents().values())

    # a period later: generation a of every tunnel and family goes, b stays
    state_file.write_text(json.dumps({"since": state["since"] - plan["rotation"]["period"], "next": "a"}))
    proc = run_in(netns, program, plans, "rotate")
    assert proc.returncode == 0, proc.stderr
    assert "flushed generation a of 2 tunnel(s)" in proc.stderr
    got = contents()
    assert {s for s, v in got.items() if not v} == {s for s in got if s.endswith("_a")}
    # asked again at once: not due
    fill()
    assert run_in(netns, program, plans, "rotate").returncode == 0
    assert all(contents().values())
    state = json.loads(state_file.read_text())
    assert state["next"] == "b"
    state_file.write_text(json.dumps({"since": state["since"] - plan["rotation"]["period"], "next": "b"}))
    assert run_in(netns, program, plans, "rotate").returncode == 0
    got = contents()
    assert {s for s, v in got.items() if not v} == {s for s in got if s.endswith("_b")}


def test_rotate_without_the_table_fails_with_nft_s_message_and_keeps_its_state(installed, tmp_path, netns):
    program, plans = installed
    plan = host_plan(tmp_path)
    (plans / "client.json").write_text(json.dumps(plan))
    state_file = Path(plan["paths"]["rotate_state"])
    state_file.parent.mkdir()
    state_file.write_text(json.dumps({"since": 0, "next": "a"}))
    proc = run_in(netns, program, plans, "rotate")
    assert proc.returncode == 1
    assert "splitroute rotate (client): nft:" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(state_file.read_text()) == {"since": 0, "next": "a"}


def test_boot_loads_the_table_and_sets_rules_and_blackholes_before_any_tunnel(installed, tmp_path, netns, nsexec):
    program, plans = installed
    plan = host_plan(tmp_path)
    (plans / "client.json").write_text(json.dumps(plan))
    for _round in range(2):  # and again: nothing added twice
        proc = run_in(netns, program, plans, "boot")
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert nsexec("nft", "list", "set", "inet", "splitroute", "wg1_v6_b").returncode == 0
    for family in ("-4", "-6"):
        rules = nsexec("ip", family, "rule").stdout
        assert rules.count("fwmark 0x1 lookup 100") == 1 and rules.count("fwmark 0x2 lookup 101") == 1, rules
        for table in ("100", "101"):
            routes = nsexec("ip", family, "route", "show", "table", table).stdout
            assert "blackhole default" in routes and "metric 100" in routes, routes
    state = json.loads(Path(plan["paths"]["rotate_state"]).read_text())
    assert state["next"] == "a"


def test_boot_with_a_broken_table_file_names_it(installed, tmp_path, netns):
    program, plans = installed
    plan = host_plan(tmp_path)
    (plans / "client.json").write_text(json.dumps(plan))
    Path(plan["nft"]["file"]).write_text("table inet splitroute { bogus }\n")
    proc = run_in(netns, program, plans, "boot")
    assert proc.returncode == 1
    assert "nft -f %s" % plan["nft"]["file"] in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- pruning (pure)


def plan_of(*tunnels):
    return {"role": "client", "tunnels": [dict(t) for t in tunnels]}


WG0 = {"name": "wg0", "table": 100, "dns": ["10.99.0.1"]}
WG1 = {"name": "wg1", "table": 101, "dns": ["10.97.0.1"]}


def test_prune_lists_only_the_removed_tunnel():
    sets = _names.tunnel_sets("wg0") + _names.tunnel_sets("wg1")
    out = _host_client.prune(plan_of(WG0, WG1), plan_of(WG0), {"sets": sets, "dropins": ["wg0", "wg1"]})
    assert out == {
        "tunnels": ["wg1"],
        "units": ["wg-quick@wg1.service", "splitroute-dns-back@wg1.service"],
        "links": ["wg1"],
        "sets": sorted(_names.tunnel_sets("wg1")),
        "tables": ["101"],
        "files": sorted(
            [
                "/etc/wireguard/wg1.conf",
                "/etc/wireguard/wg1.key",
                "/etc/systemd/system/wg-quick@wg1.service.d",
                "/etc/splitroute/dns/back-wg1.conf",
                "/etc/splitroute/dns/back-wg1-nftset.conf",
            ]
        ),
    }


def test_prune_of_the_same_plan_is_empty():
    """(dns_bypass's sets, which the table file declares whatever the plan, are never stale)"""
    sets = _names.tunnel_sets("wg0") + _names.tunnel_sets("wg1") + list(_names.BYPASS_SETS)
    out = _host_client.prune(plan_of(WG0, WG1), plan_of(WG0, WG1), {"sets": sets, "dropins": ["wg0", "wg1"]})
    assert not any(out.values()), out


def test_prune_finds_what_the_host_has_without_a_previous_plan():
    """No previous plan (a failed run, an older release): drop-ins, back files and sets found count,
    the single sets of older releases (wg0_v4) too; a tunnel that keeps no DNS loses its back resolver."""
    found = {"dropins": ["wg0", "old"], "backs": ["wg0", "old"], "sets": ["wg0_v4", "wg0_v4_a", "old_net4"]}
    out = _host_client.prune(None, plan_of(dict(WG0, dns=[])), found)
    assert out["tunnels"] == ["old"]
    assert out["units"] == [
        "wg-quick@old.service",
        "splitroute-dns-back@old.service",
        "splitroute-dns-back@wg0.service",
    ]
    assert out["sets"] == ["old_net4", "wg0_v4"]
    assert "/etc/splitroute/dns/back-wg0.conf" in out["files"] and "/etc/wireguard/wg0.conf" not in out["files"]


def test_prune_with_no_new_plan_removes_every_tunnel():
    out = _host_client.prune(plan_of(WG0, WG1), None, {"sets": ["wg0_v4_a"]})
    assert out["tunnels"] == ["wg0", "wg1"] and out["tables"] == ["100", "101"] and out["sets"] == ["wg0_v4_a"]
