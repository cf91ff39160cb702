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


def route_exit(group, exit_name, exits, log):
    """The group's table's default route by EXIT_NAME, per family the group carries (the route goes where
    the exit has no address of that family, or EXIT_NAME is None): the commands run."""
    done = []
    for family in group["families"]:
        want = exit_name if exit_name and family in exits[exit_name]["families"] else None
        have = table_exit(group["table"], family)
        if have == want:
            continue
        if want is None:
            argv = ["ip", "-%d" % family, "route", "del", "default", "table", str(group["table"])]
            argv += ["metric", str(_names.EXIT_METRIC)]
        else:
            argv = ["ip", "-%d" % family, "route", "replace", "default"]
            via = (exits[want].get("via") or {}).get(str(family))
            argv += (["via", via] if via else []) + ["dev", exits[want]["interface"]]
            argv += ["table", str(group["table"]), "metric", str(_names.EXIT_METRIC)]
        proc = _run(*argv)
        if proc.returncode != 0 and want is not None:
            # (its interface just went): the blackhole carries the family until the next round
            log("splitroute health: %s: %s" % (" ".join(argv), proc.stderr.strip()))
            continue
        done.append(" ".join(argv))
    return done


def flush_conntrack(mark):
    """Delete the conntrack entries whose mark is MARK, IPv4 and IPv6 (others are untouched)."""
    if NFCTSocket is None:
        raise _host.HostError("conntrack flush of mark %#x: pyroute2 is not installed" % mark)
    for family in (socket.AF_INET, socket.AF_INET6):
        with NFCTSocket(nfgen_family=family) as ct:
            try:
                ct.flush(mark=mark, mark_mask=0xFFFFFFFF)
            except NetlinkError as exc:
                raise _host.HostError("conntrack flush of mark %#x: %s" % (mark, exc)) from exc


def signal_back(unit):
    proc = _run("systemctl", "kill", "--signal=HUP", "--kill-whom=main", unit)
    return proc.returncode == 0


def switch(plan, group, old, new, reason, log, conntrack=flush_conntrack, hup=signal_back, first=False):
    """GROUP's traffic by exit NEW (None: the blackhole), from OLD; the route is put back when it went
    (its interface went and came back) even when the exit stays. Returns whether the exit changed."""
    exits = failover(plan)["exits"]
    route_exit(group, new, exits, log)
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
            conntrack(group["fwmark"])
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


def probe_routes(exit_):
    """The exit's probe routes in place (an interface that went and came back took them along): the
    commands that failed, for an interface that is not there (its check fails anyway)."""
    failed = []
    for route in _names.probe_routes(exit_):
        argv = ["ip", "-%s" % route["family"], "route", "replace", route["dest"], "dev", route["dev"]]
        argv += ["table", str(route["table"]), "metric", str(route["metric"])]
        if _run(*argv).returncode != 0:
            failed.append(" ".join(argv))
    return failed


def round_(plan, state, log, checker=None, now=None, **kw):
    """One round: check every exit, then every group (STATE: as written to the state file, updated)."""
    fo = failover(plan)
    now = time.time() if now is None else now
    exits_state = state.setdefault("exits", {})
    groups_state = state.setdefault("groups", {})
    for name, exit_ in sorted(fo["exits"].items()):
        probe_routes(exit_)
        ok, rtt, reason = (checker or _health.check)(exit_)
        settings = exit_["check"]
        exits_state[name] = _health.step(exits_state.get(name), ok, settings["fall"], settings["rise"], rtt, reason)
    healthy = {name: s.get("healthy") for name, s in exits_state.items()}
    for group in fo["groups"]:
        gstate = groups_state.get(group["tunnel"])
        first = gstate is None
        if first:
            # what the table says (a restarted program, or a sticky exit, keeps the exit in use)
            gstate = {"exit": _exit_by_dev(group, fo["exits"]), "switches": 0, "since": now, "reason": "started",
                      "kind": group.get("kind", "tunnel")}  # fmt: skip
            groups_state[group["tunnel"]] = gstate
        old = gstate["exit"] if gstate.get("exit") in group["order"] else None
        new = _health.choose(group["order"], healthy, old, group["sticky"])
        reason = _reason({n: exits_state[n] for n in group["order"] if n in exits_state}, old, new)
        if switch(plan, group, old, new, reason, log, first=first, **kw):
            if not first:
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
