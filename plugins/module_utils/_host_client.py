# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The client role's part of the host program (see _host.py): COMMANDS name -> fn(plan, args, log).

`splitroute boot` (splitroute-client.service, before any resolver or tunnel): loads the
nftables table file, sets the fwmark rules and each tunnel's blackhole (the role's
policy_rule code, with _host.Backend), and starts the set rotation afresh.

`splitroute rotate` (splitroute-client-rotate.timer, every few seconds): every set dnsmasq
fills exists in two generations (wg0_v4_a and wg0_v4_b, _names.GENERATIONS), both filled by
every answer and both matched by the output chain. rotate flushes one generation of every
tunnel and family when the last flush is at least PERIOD old, alternating a, b, a, ... So
consecutive flushes are at least PERIOD apart, and an address put in both sets at time t
stays in the generation that is not flushed next until the flush after that, later than
t + PERIOD: with PERIOD >= 2 * max-cache-ttl + max-ttl, no answer outlives its address in
the sets, on any kernel (nothing relies on a re-add refreshing an element's timeout). The
state (the time of the last flush and the next generation) lives in /run/splitroute, on
CLOCK_BOOTTIME; both are new at every boot, as the sets are.

`splitroute refresh` and `splitroute apply`: the lists the host fetches or reads (_host_lists).

`splitroute health` (splitroute-client-health.service): the failover of the tunnels that have a
fallback (_host_health).

The pure parts (rotation_period, rotate_step, prune) are imported by the client_plan filter
too. Nothing here imports ansible; pyroute2 only when `boot` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _host_health, _host_lists, _names, _wg_sync

# seconds added to 2 * max-cache-ttl + max-ttl for the time a query and the flush take
ROTATE_MARGIN = 5


def rotation_period(max_cache_ttl, max_ttl):
    """The least time between two flushes: an answer cached by the front resolver for up to
    max-cache-ttl and then by the client for up to max-ttl, taken from the back resolver's
    answer up to max-cache-ttl before it was handed out."""
    return 2 * max_cache_ttl + max_ttl + ROTATE_MARGIN


def rotation_interval(period):
    """How often the timer asks: a tenth of the period, 2 s to 60 s."""
    return max(2, min(60, period // 10))


def rotation(max_cache_ttl, max_ttl):
    """The plan's rotation piece: period, timer interval and the bound after which an
    address that is no longer handed out has left both generations (two flushes, each at
    most PERIOD + INTERVAL after the one before)."""
    period = rotation_period(max_cache_ttl, max_ttl)
    interval = rotation_interval(period)
    return {"period": period, "interval": interval, "removal_bound": 2 * (period + interval)}


def rotate_step(state, now, period):
    """(generation to flush or None, the new state). STATE: {"since": t, "next": gen} or None
    (no flush recorded: both generations count as flushed NOW, as at boot)."""
    gens = _names.GENERATIONS
    valid = (
        isinstance(state, dict)
        and state.get("next") in gens
        and isinstance(state.get("since"), (int, float))
        and not isinstance(state.get("since"), bool)
        and state["since"] <= now
    )
    if not valid:
        return None, {"since": now, "next": gens[0]}
    if now - state["since"] < period:
        return None, state
    gen = state["next"]
    return gen, {"since": now, "next": gens[(gens.index(gen) + 1) % len(gens)]}


def _now():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _state_path(plan):
    return os.environ.get("SPLITROUTE_ROTATE_STATE") or plan.get("paths", {}).get(
        "rotate_state", _names.CLIENT_ROTATE_STATE
    )


def _read_state(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _write_state(path, state):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    _host.write_atomic(path, json.dumps(state, sort_keys=True) + "\n")


def _nft(script):
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise _host.HostError("nft: %s" % exc) from exc
    if proc.returncode != 0:
        raise _host.HostError("nft: %s" % (proc.stderr.strip() or "exit status %d" % proc.returncode))


def flush_script(plan, gen):
    table = plan["nft"]["table"]
    return "".join(
        "flush set inet %s %s_v%d_%s\n" % (table, tunnel["name"], family, gen)
        for tunnel in plan["tunnels"]
        for family in _names.FAMILIES
    )


def rotate(plan, args, log, now=None):
    period = plan["rotation"]["period"]
    path = _state_path(plan)
    now = _now() if now is None else now
    state = _read_state(path)
    gen, new = rotate_step(state, now, period)
    if gen is not None:
        _nft(flush_script(plan, gen))
        log("splitroute rotate: flushed generation %s of %d tunnel(s)" % (gen, len(plan["tunnels"])))
    if new != state:
        _write_state(path, new)
    return 0


def boot(plan, args, log):
    proc = subprocess.run(["nft", "-f", plan["nft"]["file"]], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise _host.HostError("nft -f %s: %s" % (plan["nft"]["file"], proc.stderr.strip()))
    _host.merge_rules(plan["rules"], plan["boot_routes"], log)
    # the failover groups' back resolvers start with their own servers (their table's blackhole until
    # splitroute health finds an exit)
    _host_health.init_servers(plan, log)
    # the table may be new (boot): its sets are empty, both generations start now
    _write_state(_state_path(plan), rotate_step(None, _now(), plan["rotation"]["period"])[1])
    # the sources' networks from their last good copies (the front is not up yet: nothing to signal); a failure
    # here leaves the table, the rules and the blackholes in place and the front starts
    try:
        _host_lists.apply(plan, log=log)
    except _host.HostError as exc:
        log("splitroute boot: the lists were not applied: %s" % exc)
    return 0


COMMANDS = {
    "boot": boot,
    "rotate": rotate,
    "apply": (_host_lists.setup_apply, _host_lists.apply_command),
    "refresh": (_host_lists.setup_refresh, _host_lists.refresh_command),
    "preresolve": (_host_lists.setup_preresolve, _host_lists.preresolve_command),
    "health": (_host_health.setup, _host_health.command),
    "wg-sync": (_wg_sync.setup, _wg_sync.command(lambda plan: [t["name"] for t in plan.get("tunnels", [])])),
}


# ---------------------------------------------------------------- pruning (pure)


def _tunnels(plan):
    return {t["name"]: t for t in (plan or {}).get("tunnels", []) if isinstance(t, dict) and "name" in t}


def prune(old, new, found=None):
    """What the client role removes from the host: the pieces of tunnels that OLD (the host's
    previous plan, or None) or FOUND (what the role finds on the host: "dropins" and "backs",
    tunnel names from wg-quick drop-ins and back resolver files; "sets", the set names in the
    client's table) have and NEW (the plan being applied, or None when the client is
    removed) does not. Returns tunnels, units (to stop and disable), links, sets, tables
    (whose routes and rules go), files; each sorted, nothing of NEW in them."""
    found = found or {}
    old_t, new_t = _tunnels(old), _tunnels(new)
    gone = (set(old_t) | set(found.get("dropins", []))) - set(new_t)
    backs_gone = {n for n, t in old_t.items() if t.get("dns")} | set(found.get("backs", []))
    backs_gone -= {n for n, t in new_t.items() if t.get("dns")}
    units, files = set(), set()
    for name in gone:
        units.add(_names.wg_unit(name))
        files.update(_names.wg_files(name))
        files.add(_names.wg_dropin_dir(name))
    for name in backs_gone:
        units.add(_names.back_unit(name))
        files.update(_names.back_files(name))
    # (dns_bypass's sets are declared by the table file whatever the plan: never stale)
    keep_sets = {s for t in new_t for s in _names.tunnel_sets(t)} | set(_names.BYPASS_SETS)
    sets = set(found.get("sets", [])) - keep_sets
    keep_tables = {t.get("table") for t in new_t.values()}
    tables = {t.get("table") for n, t in old_t.items() if t.get("table") not in keep_tables}
    tables.discard(None)
    return {
        "tunnels": sorted(gone),
        # the tunnels first, then their back resolvers
        "units": sorted(units, key=lambda u: (not u.startswith("wg-quick@"), u)),
        "links": sorted(gone),
        "sets": sorted(sets),
        "tables": sorted(str(t) for t in tables),
        "files": sorted(files),
    }
