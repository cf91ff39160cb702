# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""`splitroute health` (splitroute-client-health.service): the client's failover, between Ansible runs,
and its endpoints given as names, looked up again when their handshake goes stale.

A tunnel with `fallback` is a failover group: its traffic (everything its mark sends to its table)
leaves by the first healthy exit of [the tunnel itself] + fallback (_health.choose). This program
owns the group table's default route (metric _names.EXIT_METRIC; wg-quick adds none there): `ip route
replace default dev EXIT table T` when the exit changes, the route gone when no exit is healthy, so
the table's blackhole (metric 100, put there at boot) takes the traffic: never the uplink, and no
moment in between where the table has neither.

On a switch, in this order: the route; the group's back resolver gets the new exit's DNS servers
(its servers-file, then a SIGHUP: DNS follows the traffic); the conntrack entries of the group's
mark are deleted, so applications reconnect at once by the new exit (other marks are untouched);
the switch is logged with its reason. The state (per exit: health, RTT, checks; per group: exit in
use, switches, last reason) is written to /run/splitroute/client-health.json after every round,
for `splitroute status` and the metrics.

The plan's `failover` (client_plan.client_failover) carries everything: the groups with their
order, table, mark and families, the exits with their interface, probe mark, targets and check
settings. Nothing here imports ansible; pyroute2 (guarded) deletes the conntrack entries.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

from ansible_collections.splitroute.vpn.plugins.module_utils import _health, _host, _names
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import parse_address

try:  # the roles install python3-pyroute2 on the host; the controller imports this module without it
    from pyroute2 import NFCTSocket
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:
    NFCTSocket = None
    NetlinkError = OSError

_STOP = []
_SLEEPING = []


def failover(plan):
    return plan.get("failover") or {"groups": [], "exits": {}}


def state_path(plan):
    return os.environ.get("SPLITROUTE_HEALTH_STATE") or failover(plan).get("state", _names.CLIENT_HEALTH_STATE)


def read_state(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def servers_text(dns, source=None):
    """The back resolver's servers-file for an exit's DNS servers (addresses the plan checked), each asked
    from SOURCE when given (a gateway provider's resolver sends from its veth address)."""
    at = "@%s" % source if source else ""
    return "# written by splitroute health: the DNS servers of the exit in use\n" + "".join(
        "server=%s%s\n" % (address, at) for address in dns
    )


def write_servers(plan, group, exit_name):
    """The group's back resolver's servers-file for EXIT_NAME (None: the group's own servers): True when
    it changed."""
    exits = failover(plan)["exits"]
    dns = exits.get(exit_name, {}).get("dns") if exit_name else None
    text = servers_text(dns or group["dns"], group.get("dns_source"))
    path = group["servers_file"]
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    _host.write_atomic(path, text)
    return True


def _run(*argv):
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _host.HostError("%s: %s" % (argv[0], exc)) from exc


def table_exit(table, family):
    """The device of TABLE's default route of metric EXIT_METRIC (None: there is none) for FAMILY."""
    proc = _run("ip", "-j", "-%d" % family, "route", "show", "table", str(table), "default")
    try:
        routes = json.loads(proc.stdout or "[]")
    except ValueError:
        return None
    for route in routes:
        if route.get("metric", 0) == _names.EXIT_METRIC and route.get("type", "unicast") == "unicast":
            return route.get("dev")
    return None


def want_routes(plan, chosen, links):
    """The routes this program owns, for CHOSEN (group -> exit name, None: none): each group table's default
    route by its exit (per family the exit carries; metric EXIT_METRIC, with the exit's next hop on a gateway)
    and the blackhole behind it, and every exit's probe routes. Routes through an interface not in LINKS (an
    exit that just went) are left out: the blackhole carries that family until the interface is back."""
    fo = failover(plan)
    exits = fo["exits"]
    out = []
    for group in fo["groups"]:
        name = chosen.get(group["tunnel"])
        for family in group["families"]:
            exit_ = exits.get(name) if name else None
            if exit_ and family in exit_["families"] and exit_["interface"] in links:
                route = {"table": str(group["table"]), "dest": "default", "dev": exit_["interface"],
                         "family": str(family), "metric": _names.EXIT_METRIC}  # fmt: skip
                via = (exit_.get("via") or {}).get(str(family))
                if via:
                    route["via"] = via
                out.append(route)
            out.append({"table": str(group["table"]), "dest": "default", "type": "blackhole", "family": str(family),
                        "metric": _names.BLACKHOLE_METRIC})  # fmt: skip
    for exit_ in exits.values():
        out.extend(dict(r, table=str(r["table"])) for r in _names.probe_routes(exit_) if r["dev"] in links)
    return out


def apply_routes(plan, chosen, log):
    """WANT_ROUTES in place with policy_rule's code (state replaced: in each route's slot, family, table and
    destination, what is not wanted goes; a default route that changes exit is replaced in one request, so the
    table never lacks both it and its blackhole). Reads the tables and changes only what differs: the commands."""
    from ansible_collections.splitroute.vpn.plugins.module_utils._policy_rule import (  # noqa: PLC0415 (pyroute2)
        PolicyRouting,
    )

    links = {name for _index, name in socket.if_nameindex()}
    params = {"rules": [], "routes": want_routes(plan, chosen, links), "scope": None, "table_names": None,
              "state": "replaced", "netns": None}  # fmt: skip
    return PolicyRouting(_host.Backend(params, log)).run()["commands"]


def flush_conntrack(mark, mask=0xFFFFFFFF):
    """Delete the conntrack entries whose mark is MARK in the bits of MASK, IPv4 and IPv6 (others are
    untouched)."""
    if NFCTSocket is None:
        raise _host.HostError("conntrack flush of mark %#x: pyroute2 is not installed" % mark)
    for family in (socket.AF_INET, socket.AF_INET6):
        with NFCTSocket(nfgen_family=family) as ct:
            try:
                ct.flush(mark=mark, mark_mask=mask)
            except NetlinkError as exc:
                raise _host.HostError("conntrack flush of mark %#x: %s" % (mark, exc)) from exc


def signal_back(unit):
    proc = _run("systemctl", "kill", "--signal=HUP", "--kill-whom=main", unit)
    return proc.returncode == 0


def switch(plan, group, old, new, reason, log, conntrack=flush_conntrack, hup=signal_back, first=False):
    """What follows GROUP's move from exit OLD to NEW (None: the blackhole), its route already in place
    (apply_routes): its resolver's servers (written again when they differ, even when the exit stays),
    its connections, the log line. Returns whether the exit changed."""
    if group.get("servers_file") and write_servers(plan, group, new):
        hup(group["back_unit"])
    if new == old:
        return False
    # the connections of the group's mark were going by OLD (or nowhere): they start again by NEW (a
    # gateway's provider has no mark: its connections' NAT is in the old provider's namespace, so their next
    # packet leaves the new one with its address and is reset by the far end)
    what = "%s %s" % (group.get("kind", "tunnel"), group["tunnel"])
    if group.get("fwmark"):
        try:
            conntrack(group["fwmark"], group.get("fwmask", 0xFFFFFFFF))
        except _host.HostError as exc:
            log("splitroute health: %s: %s (its connections reconnect when they time out)" % (what, exc))
    log(
        "splitroute health: %s: %s%s -> %s (%s)"
        % (
            what,
            "starting: " if first else "",
            old or "blackhole",
            new or "blackhole (no exit is healthy)",
            reason,
        )
    )
    return True


def _reason(exits_state, old, new):
    if new is None:
        return "; ".join("%s: %s" % (n, s.get("reason")) for n, s in sorted(exits_state.items())) or "no exit"
    if old is None:
        return "%s is healthy" % new
    if not exits_state.get(old, {}).get("healthy"):
        return "%s is down: %s" % (old, exits_state.get(old, {}).get("reason"))
    return "%s is healthy again" % new


def _exit_by_dev(group, exits):
    """The exit whose interface is the group table's default route now (at start), or None."""
    dev = table_exit(group["table"], group["families"][0]) if group["families"] else None
    return next((n for n in group["order"] if dev is not None and exits[n]["interface"] == dev), None)


def round_(plan, state, log, checker=None, now=None, **kw):
    """One round: the routes in place for the exits in use (the probe routes first of all: an interface that
    went and came back took them along), every exit checked, then every group's choice, its route changed at
    once for all groups that move (STATE: as written to the state file, updated)."""
    fo = failover(plan)
    now = time.time() if now is None else now
    exits_state = state.setdefault("exits", {})
    groups_state = state.setdefault("groups", {})
    first = set()
    for group in fo["groups"]:
        if group["tunnel"] not in groups_state:
            # what the table says (a restarted program, or a sticky exit, keeps the exit in use)
            groups_state[group["tunnel"]] = {"exit": _exit_by_dev(group, fo["exits"]), "switches": 0, "since": now,
                                             "reason": "started", "kind": group.get("kind", "tunnel")}  # fmt: skip
            first.add(group["tunnel"])
    current = {g["tunnel"]: groups_state[g["tunnel"]]["exit"] for g in fo["groups"]}
    apply_routes(plan, current, log)
    for name, exit_ in sorted(fo["exits"].items()):
        ok, rtt, reason = (checker or _health.check)(exit_)
        settings = exit_["check"]
        exits_state[name] = _health.step(exits_state.get(name), ok, settings["fall"], settings["rise"], rtt, reason)
    healthy = {name: s.get("healthy") for name, s in exits_state.items()}
    moves = []
    for group in fo["groups"]:
        gstate = groups_state[group["tunnel"]]
        old = gstate["exit"] if gstate.get("exit") in group["order"] else None
        new = _health.choose(group["order"], healthy, old, group["sticky"])
        reason = _reason({n: exits_state[n] for n in group["order"] if n in exits_state}, old, new)
        moves.append((group, old, new, reason))
    chosen = {group["tunnel"]: new for group, _old, new, _reason in moves}
    if chosen != current:
        apply_routes(plan, chosen, log)
    for group, old, new, reason in moves:
        is_first = group["tunnel"] in first
        if switch(plan, group, old, new, reason, log, first=is_first, **kw):
            gstate = groups_state[group["tunnel"]]
            if not is_first:
                gstate["switches"] += 1
            gstate.update(exit=new, since=now, reason=reason)
    state["updated"] = now
    return state


# ---------------------------------------------------------------- endpoints given as names

# wg-quick resolves an endpoint's name once, when the interface comes up. A peer whose address changes
# (dynamic DNS) is looked up again once its handshake is older than this (the age WireGuard's own
# reresolve-dns.sh uses: a session renews every 120 s while packets flow), at most every ENDPOINT_EVERY s.
ENDPOINT_STALE = 135
ENDPOINT_EVERY = 30
ENDPOINT_INTERVAL = 5  # s between two rounds when no tunnel has a fallback


def name_endpoints(plan):
    """The tunnels whose peer endpoint is a name: interface, peer key, name and port."""
    out = []
    for tunnel in plan.get("tunnels") or []:
        peer = tunnel.get("peer") or {}
        host, endpoint = peer.get("endpoint_host"), peer.get("endpoint")
        if host and endpoint and peer.get("public_key") and parse_address(host)[0] is None:
            out.append(
                {"interface": tunnel["name"], "public_key": peer["public_key"], "host": host,
                 "port": int(endpoint.rsplit(":", 1)[1])}
            )  # fmt: skip
    return out


def resolve(host, port):
    """The addresses HOST resolves to (the host's resolver: the front, which sends a name no tunnel lists
    to the uplink's resolvers), IPv4 first."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return []
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family and info[4][0] not in found:
                found.append(info[4][0])
    return found


def peer_endpoint(interface, public_key):
    """The address the interface sends to PUBLIC_KEY's peer now (None: none, or no such interface)."""
    proc = _run("wg", "show", interface, "endpoints")
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        fields = line.split()
        if len(fields) == 2 and fields[0] == public_key and fields[1] != "(none)":
            return fields[1].rsplit(":", 1)[0].strip("[]")
    return None


def reresolve(entry, state, log, now, stale=ENDPOINT_STALE, every=ENDPOINT_EVERY, lookup=resolve):
    """Look ENTRY's name up again when its handshake is stale (at most every EVERY s) and point the peer at
    the new address when the name moved; STATE (this endpoint's, updated) keeps the last lookup. Whether it
    set a new address."""
    ages = _health.handshake_ages(entry["interface"])
    if ages is None:
        return False
    fresh = [a for a in ages if a is not None]
    if fresh and min(fresh) <= stale:
        return False
    if now - state.get("looked_up", float("-inf")) < every:
        return False
    state["looked_up"] = now
    addresses = lookup(entry["host"], entry["port"])
    current = peer_endpoint(entry["interface"], entry["public_key"])
    state.update(addresses=addresses, current=current)
    if not addresses:
        state["error"] = "%s does not resolve" % entry["host"]
        log("splitroute health: %s: endpoint %s does not resolve" % (entry["interface"], entry["host"]))
        return False
    state["error"] = None
    if current in addresses:
        return False
    new = addresses[0]
    endpoint = "[%s]:%d" % (new, entry["port"]) if ":" in new else "%s:%d" % (new, entry["port"])
    proc = _run("wg", "set", entry["interface"], "peer", entry["public_key"], "endpoint", endpoint)
    if proc.returncode != 0:
        log("splitroute health: %s: wg set endpoint %s: %s" % (entry["interface"], endpoint, proc.stderr.strip()))
        return False
    state["changes"] = state.get("changes", 0) + 1
    state["current"] = new
    log(
        "splitroute health: %s: endpoint %s is %s now (was %s; no handshake for %s)"
        % (entry["interface"], entry["host"], new, current or "none",
           "%d s" % min(fresh) if fresh else "ever")
    )  # fmt: skip
    return True


def endpoints_round(plan, state, log, now=None, **kw):
    now = time.time() if now is None else now
    endpoints = state.setdefault("endpoints", {})
    for entry in name_endpoints(plan):
        reresolve(entry, endpoints.setdefault(entry["interface"], {"host": entry["host"]}), log, now, **kw)
    return state


def _stop(_signum, _frame):
    """SIGTERM: at once between two rounds; a round under way finishes first (a switch is never cut short)."""
    _STOP.append(True)
    if _SLEEPING:
        raise SystemExit(0)


def run(plan, log, rounds=None, **kw):
    fo = failover(plan)
    path = state_path(plan)
    names = name_endpoints(plan)
    if not fo["groups"] and not names:
        log("splitroute health: no tunnel or provider has a fallback, no endpoint is given as a name: nothing to watch")
        return 0
    signal.signal(signal.SIGTERM, _stop)
    interval = min([e["check"]["interval"] for e in fo["exits"].values()] + ([ENDPOINT_INTERVAL] if names else []))
    # every group is applied afresh at start (the choice of a previous run is not trusted)
    # (the exits' health carries over a restart, for the exits the plan still has)
    kept = read_state(path).get("exits")
    state = {"exits": {n: s for n, s in (kept if isinstance(kept, dict) else {}).items() if n in fo["exits"]}}
    state["groups"] = {}
    state["endpoints"] = {}
    log(
        "splitroute health: watching %s (exits %s; endpoints by name: %s), every %ss"
        % (
            ", ".join(g["tunnel"] for g in fo["groups"]) or "nothing with a fallback",
            ", ".join(sorted(fo["exits"])) or "none",
            ", ".join("%s %s" % (e["interface"], e["host"]) for e in names) or "none",
            interval,
        )
    )
    count = 0
    while not _STOP:
        start = time.monotonic()
        try:
            state = round_(plan, state, log, **kw)
            state = endpoints_round(plan, state, log)
        except _host.HostError as exc:
            # (an ip or systemctl that could not run): the routes stay as they are, the next round tries again
            log("splitroute health: %s" % exc)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        _host.write_atomic(path, json.dumps(state, sort_keys=True) + "\n")
        count += 1
        if rounds is not None and count >= rounds:
            break
        delay = interval - (time.monotonic() - start)
        if delay > 0 and not _STOP:
            _SLEEPING.append(True)
            try:
                time.sleep(delay)
            finally:
                _SLEEPING.clear()
    return 0


def setup(parser):
    parser.add_argument("--rounds", type=int, default=None, help="stop after this many rounds (default: never)")


def command(plan, args, log):
    """watch the exits of the tunnels (providers) that have a fallback and move their traffic (runs until stopped)"""
    return run(plan, log, rounds=args.rounds)


def init_servers(plan, log):
    """At boot: each group's back resolver's servers-file with the group's own servers, where there is none
    (its queries take the group's table: the blackhole until an exit is found healthy)."""
    for group in failover(plan)["groups"]:
        if group.get("servers_file") and not os.path.exists(group["servers_file"]):
            write_servers(plan, group, None)
