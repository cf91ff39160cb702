# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The client's lists on the host (see _host.py, _host_client.py): `splitroute refresh` and `splitroute apply`.

A tunnel's `sources` in the plan are URLs (http, https) and files on the host. For each, the lists
directory (plan["lists"]["dir"], /var/lib/splitroute/client-lists) holds ID.list, its last good copy
as it was fetched or read, and ID.json, its state: when it was last fetched and last good, its ETag
and Last-Modified, its entries, invalid lines and last error.

`refresh` (splitroute-client-lists.timer) fetches or reads every source that is due (its interval
since the last fetch; --force: every one). A body replaces the last good copy only when
_lists.read_body takes it: a failed fetch, an error page, an empty body or too many invalid lines
keep the last good copy, and its entries keep routing. A 304 (or a file whose size and mtime did not
change) rewrites nothing and compiles nothing. Then `apply`, if a copy changed.

`apply` (the role, after writing the plan; `boot`; `refresh`) builds what the host routes from the
plan and the last good copies (_lists.merge: a domain listed for two tunnels goes to the first):

- the front resolver's lists, one server=/DOMAIN/BACK per listed domain: front-base.conf, the conf-file
  the front loads at start (a 100,000-line one in about 0.3 s), and its servers-file, the changes since
  (front_plan). A change goes live by a SIGHUP (systemctl try-reload-or-restart, only if it runs): no
  restart, no lost query, no conntrack flush. One the servers-file cannot carry cheaply (a domain moved to
  another tunnel; more changes than WALK_LIMIT allows: a 100,000-domain list's first load) restarts the
  front on a new base instead, in about 0.3 s. Both are checked by `dnsmasq --test` before they replace
  the live files (atomically);
- the sources' networks in the tunnel's set TUNNEL_src4 / TUNNEL_src6 (the table file declares them
  and never touches their elements), flushed and filled in one nft transaction, checked by `nft -c`.

Nothing is written when nothing changed (the role's second run reports no change). --check: what
would change, nothing written. --json: the result on stdout.

`preresolve` (splitroute-client-preresolve.service: after the front and the tunnels at start, and
again after a refresh that changed the front's lists): every listed name of the tunnels with
`preresolve` is asked of the front resolver (A and AAAA, as the tunnel carries them), at most
plan["lists"]["preresolve_rate"] a second, so the back resolvers put their addresses in the sets before
an application asks.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

from ansible_collections.splitroute.vpn.plugins.module_utils import _dnsmasq, _fetch, _host, _lists, _names, _releases

# how many invalid lines and conflicts a source's state keeps as examples
SAMPLES = 5


def _now():
    return time.time()


def lists_dir(plan):
    return os.environ.get("SPLITROUTE_LISTS_DIR") or plan.get("lists", {}).get("dir") or _names.CLIENT_LISTS_DIR


def sources(plan):
    """[(tunnel name, source)] in the plan's order, then the DoH lists of dns_bypass (owner DNS_BYPASS_SOURCES)."""
    out = [(t["name"], s) for t in plan.get("tunnels", []) for s in t.get("sources", [])]
    return out + [(_names.DNS_BYPASS_SOURCES, s) for s in (plan.get("bypass") or {}).get("doh_sources", [])]


def doh_networks(plan, directory):
    """family -> the networks of the DoH resolvers' sets: the plan's (the built-in list and doh_addresses) and
    those of the DoH lists' last good copies (their domains are not addresses: ignored), collapsed."""
    bypass = plan.get("bypass") or {}
    nets = {f: [ipaddress.ip_network(n) for n in bypass.get("doh%d" % f, [])] for f in _names.FAMILIES}
    for source in bypass.get("doh_sources", []):
        content = good_copy(directory, source)
        for family in _names.FAMILIES if content is not None else ():
            nets[family] += [ipaddress.ip_network(n) for n in getattr(content, "networks%d" % family)]
    return {f: [str(n) for n in ipaddress.collapse_addresses(nets[f])] for f in _names.FAMILIES}


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_state(directory, source):
    """SOURCE's state, {} when it has none or the state is of another URL or path (never mixed up)."""
    state = _read_json(os.path.join(directory, source["id"] + ".json")) or {}
    return state if state.get("where") == _where(source) else {}


def _where(source):
    return source.get("url") or source.get("path")


def good_copy(directory, source):
    """SOURCE's last good copy, read (a ListContent), or None."""
    try:
        with open(os.path.join(directory, source["id"] + ".list"), "rb") as fh:
            body = fh.read()
    except OSError:
        return None
    if not read_state(directory, source).get("last_success"):
        return None
    content, _reason = _lists.read_body(body, max_invalid=len(body))
    return content


def _write(path, data, mode=0o644):
    _host.write_atomic(path, data, mode) if isinstance(data, str) else _write_bytes(path, data, mode)


def _write_bytes(path, data, mode):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def due(state, source, now, force=False):
    """Whether SOURCE is to be fetched NOW: forced, never fetched, its interval passed since the last fetch
    (a second early counts: the timer is not exact), or a last fetch in the future (the clock went back)."""
    last = state.get("last_fetch")
    if force or not isinstance(last, (int, float)) or last > now:
        return True
    return now - last >= source["interval"] - 1


def _get(source, state):
    """(body or None when not modified, the new validators) for SOURCE; raises FetchError / OSError."""
    if source.get("url"):
        got = _fetch.fetch(
            source["url"],
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            timeout=source["timeout"],
            max_bytes=source["max_bytes"],
            cadata=source.get("ca"),
            pin=source.get("sha256"),
        )
        if got.not_modified:
            return None, {"etag": state.get("etag"), "last_modified": state.get("last_modified")}, ""
        return got.body, {"etag": got.etag, "last_modified": got.last_modified}, got.content_type
    st = os.stat(source["path"])
    stamp = [st.st_size, st.st_mtime_ns]
    if state.get("stamp") == stamp and state.get("last_success"):
        return None, {"stamp": stamp}, ""
    if st.st_size > source["max_bytes"]:
        raise _fetch.FetchError("the file is %d bytes, more than the limit of %d" % (st.st_size, source["max_bytes"]))
    with open(source["path"], "rb") as fh:
        return fh.read(source["max_bytes"] + 1), {"stamp": stamp}, ""


def refresh_source(directory, source, now, log):
    """Fetch or read SOURCE once and keep what is good. Returns "changed", "not-modified" or "failed"."""
    state = read_state(directory, source)
    new = dict(state, where=_where(source), last_fetch=now)
    result = "failed"
    try:
        body, validators, ctype = _get(source, state)
    except (_fetch.FetchError, OSError) as exc:
        new["last_error"] = str(exc)
        body = validators = None
    if validators is not None and body is None:
        new.update(validators, last_success=now, last_error=None, last_result="not-modified")
        result = "not-modified"
    elif body is not None:
        content, reason = _lists.read_body(body, ctype, source["max_invalid"])
        if content is not None:
            new["invalid"] = len(content.invalid)
            new["invalid_sample"] = content.invalid[:SAMPLES]
        if reason:
            new["last_error"] = reason
        else:
            _write_bytes(os.path.join(directory, source["id"] + ".list"), body, 0o644)
            new.update(
                validators,
                last_success=now,
                last_change=now,
                last_error=None,
                last_result="changed",
                domains=len(content.domains),
                networks=len(content.networks4) + len(content.networks6),
                lines=content.lines,
            )
            result = "changed"
    if result == "failed":
        new["last_result"] = "failed"
        new["failures"] = int(state.get("failures") or 0) + 1
        log(
            "splitroute refresh: %s (%s): %s; its last good copy stays"
            % (_where(source), source["id"], new["last_error"])
        )
    else:
        new["failures"] = 0
    _write(os.path.join(directory, source["id"] + ".json"), json.dumps(new, sort_keys=True) + "\n")
    return result


# ---------------------------------------------------------------- apply


def _networks(elements):
    """The networks of `nft -j list set` ELEMENTS (addresses, prefixes, ranges), collapsed."""
    nets = []
    for elem in elements:
        value = elem.get("elem", {}).get("val", elem) if isinstance(elem, dict) and "elem" in elem else elem
        if isinstance(value, str):
            nets.append(ipaddress.ip_network(value))
        elif isinstance(value, dict) and "prefix" in value:
            nets.append(ipaddress.ip_network("%s/%s" % (value["prefix"]["addr"], value["prefix"]["len"])))
        elif isinstance(value, dict) and "range" in value:
            low, high = (ipaddress.ip_address(a) for a in value["range"])
            nets.extend(ipaddress.summarize_address_range(low, high))
    by_family = {4: [n for n in nets if n.version == 4], 6: [n for n in nets if n.version == 6]}
    return [str(n) for family in (4, 6) for n in ipaddress.collapse_addresses(by_family[family])]


def _set_networks(table, name):
    """The networks in set NAME, or None when the set does not exist."""
    proc = subprocess.run(
        ["nft", "-j", "list", "set", "inet", table, name], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    elements = []
    for item in json.loads(proc.stdout).get("nftables", []):
        elements.extend(item.get("set", {}).get("elem", []))
    return _networks(elements)


def sets_script(table, changes):
    """One nft transaction for CHANGES [(set, networks)]: each set flushed and filled."""
    lines = []
    for name, nets in changes:
        lines.append("flush set inet %s %s" % (table, name))
        if nets:
            lines.append("add element inet %s %s { %s }" % (table, name, ", ".join(nets)))
    return "\n".join(lines) + "\n"


def _nft(script, check):
    argv = ["nft", "-c", "-f", "-"] if check else ["nft", "-f", "-"]
    proc = subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise _host.HostError("nft%s: %s" % (" -c" if check else "", proc.stderr.strip()[:2000]))


# ---------------------------------------------------------------- the front's files

# the most work (_dnsmasq.front_overrides) a SIGHUP may cost the front: about 3 s on the lab machine
# (2 cores), in which it answers nothing (queries wait in its socket, none is lost); more, and the front
# is restarted on a compacted base instead (a conf-file of 100,000 lines loads in about 0.3 s)
WALK_LIMIT = 200_000_000

OVERRIDES_HEADER = (
    "# Written by `splitroute apply`. Do not edit: the changes to the lists since the front resolver\n"
    "# loaded front-base.conf (# : a domain no longer listed, to the standard servers), re-read on SIGHUP.\n"
)


class Front:
    """The front resolver as systemd runs it (UNIT): its main PID, a reload (SIGHUP) and a restart."""

    def __init__(self, unit=_names.FRONT_UNIT):
        self.unit = unit

    def pid(self):
        try:
            proc = subprocess.run(
                ["systemctl", "show", "--property=MainPID", "--value", self.unit],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
        except OSError:
            return None
        value = proc.stdout.strip()
        return int(value) if proc.returncode == 0 and value.isdigit() and int(value) > 0 else None

    def _systemctl(self, verb):
        proc = subprocess.run(["systemctl", verb, self.unit], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise _host.HostError("systemctl %s %s: %s" % (verb, self.unit, proc.stderr.strip()))

    def reload(self):
        self._systemctl("try-reload-or-restart")

    def restart(self):
        self._systemctl("try-restart")


def process_start(pid):
    """When process PID started (epoch seconds, to the clock tick)."""
    with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as fh:
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted + ticks / os.sysconf("SC_CLK_TCK")


def front_state(front, base_path):
    """None: the front does not run, or runs without reading BASE_PATH (a unit of an older release: the
    role restarts it); "current": it loaded the BASE_PATH on disk; "stale": the file changed since."""
    pid = front.pid() if front is not None else None
    if pid is None:
        return None
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            argv = fh.read().split(b"\0")
        loaded = process_start(pid)
    except (OSError, IndexError, ValueError):
        return None
    if ("--conf-file=%s" % base_path).encode() not in argv:
        return None
    try:
        return "current" if os.stat(base_path).st_mtime <= loaded else "stale"
    except OSError:
        return "stale"


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _dnsmasq_test(path, what, servers_file):
    servers_file = servers_file and _releases.DNSMASQ_TEST_READS_SERVERS_FILE
    argv = _releases.dnsmasq_test_argv("dnsmasq", path, servers_file=servers_file)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise _host.HostError("dnsmasq --test refused the new %s: %s" % (what, (proc.stderr or proc.stdout).strip()))


def _stage(path, text, servers_file):
    """TEXT in a new file next to PATH, once `dnsmasq --test` took it; returns its path."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".conf", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _dnsmasq_test(tmp, path, servers_file)
        os.chmod(tmp, 0o644)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def front_plan(base_text, servers_text, text, state, limit=WALK_LIMIT):
    """What brings the front to route as TEXT (the servers= lines of every listed domain) from the files on
    disk (BASE_TEXT, SERVERS_TEXT: None when missing) and its STATE (front_state): (the base to write or
    None, the servers-file to write or None, "reload", "restart" or None).

    While the front runs on the base on disk, a change goes into the servers-file as overrides of that base
    (_dnsmasq.front_overrides) and a SIGHUP reads it: no restart, no lost query. A change overrides cannot
    express (a domain moved to another tunnel) or that would cost more than LIMIT, a base the running front
    did not load, or a front that does not run: the base becomes TEXT, the servers-file empty, and a
    running front restarts."""
    want = _dnsmasq.server_routes(text)
    if base_text is not None and state != "stale":
        found = _dnsmasq.front_overrides(_dnsmasq.server_routes(base_text), want)
        if found is not None and (state is None or found[1] <= limit):
            overrides = OVERRIDES_HEADER + "".join(line + "\n" for line in found[0])
            if overrides == servers_text:
                return None, None, None
            if state == "current":
                return None, overrides, "reload"
    base = None if base_text == text else text
    servers = None if servers_text == OVERRIDES_HEADER else OVERRIDES_HEADER
    if state is None:
        return base, servers, None
    return base, servers, "restart"


def apply_front(paths, text, front, check=False, limit=WALK_LIMIT):
    """Bring the front's files (PATHS: front_base, front_servers) and FRONT (Front) to TEXT (front_plan).
    Both files pass `dnsmasq --test` before either replaces the live one (atomically), the servers-file
    first (a stop in between leaves a base the front did not load: "stale", the next apply restarts it).
    Returns what was done: "written", "reload", "restart" or None."""
    base_path, servers_path = paths["front_base"], paths["front_servers"]
    state = front_state(front, base_path)
    base, servers, action = front_plan(_read_text(base_path), _read_text(servers_path), text, state, limit)
    if check or (base is None and servers is None and action is None):
        return action or ("written" if base is not None or servers is not None else None)
    staged = []
    try:
        if servers is not None:
            staged.append((_stage(servers_path, servers, servers_file=True), servers_path))
        if base is not None:
            staged.append((_stage(base_path, base, servers_file=False), base_path))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _path in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if action == "reload":
        front.reload()
    elif action == "restart":
        front.restart()
        _stamp_loaded(front, base_path)
    return action or "written"


def _stamp_loaded(front, base_path):
    """After a restart the new front reads the base on disk: stamp it no newer than the front's start
    (process_start is to the clock tick, a restart can follow the write within one)."""
    pid = front.pid()
    if pid is None:
        return
    try:
        loaded = process_start(pid)
        if os.stat(base_path).st_mtime > loaded:
            os.utime(base_path, (loaded, loaded))
    except (OSError, IndexError, ValueError):
        pass


def front_groups(plan, merged):
    """The plan's front groups with the merged domains of every tunnel that resolves through its tunnel."""
    backs = {g["name"]: g["back_server"] for g in plan.get("front_groups", [])}
    return [
        {"name": t["name"], "domains": merged[t["name"]]["domains"], "back_server": backs[t["name"]]}
        for t in plan.get("tunnels", [])
        if t["name"] in backs and merged[t["name"]]["domains"]
    ]


def compute(plan):
    """(merged, conflicts, the front's lists: server= lines) for PLAN and the last good copies on the host."""
    directory = lists_dir(plan)
    contents = {}
    for _tunnel, source in sources(plan):
        content = good_copy(directory, source)
        if content is not None:
            contents[source["id"]] = content
    merged, conflicts = _lists.merge(plan.get("tunnels", []), contents)
    total = sum(len(m["domains"]) + len(m["networks4"]) + len(m["networks6"]) for m in merged.values())
    if total > _lists.MAX_ENTRIES:
        raise _host.HostError("%d entries, more than %d: not applied" % (total, _lists.MAX_ENTRIES))
    try:
        text = _dnsmasq.compile_config(front_groups(plan, merged), "front").content
    except _dnsmasq.InputError as exc:
        raise _host.HostError("the front's lists: %s" % exc) from exc
    return merged, conflicts, text


def apply(plan, check=False, front=None, log=None):
    """Bring the front's lists and the sources' network sets to what PLAN and the good copies give (see the
    module's doc). FRONT: the front resolver (Front(): as systemd runs it). Returns the result: changed,
    servers_file (the front's lists changed), front (what was done to them: apply_front), sets (the sets
    changed), conflicts."""
    merged, conflicts, text = compute(plan)
    table = plan["nft"]["table"]
    front = Front() if front is None else front
    changes = []
    wanted = [
        (_names.src_set(t["name"], family), merged[t["name"]]["networks%d" % family])
        for t in plan.get("tunnels", [])
        for family in _names.FAMILIES
    ]
    if (plan.get("bypass") or {}).get("doh_sources"):
        doh = doh_networks(plan, lists_dir(plan))
        wanted += [(_names.BYPASS_DOH_SETS[family], doh[family]) for family in _names.FAMILIES]
    for name, want in wanted:
        have = _set_networks(table, name)
        if have is None and (want or not check):
            if check:
                changes.append((name, want))
                continue
            raise _host.HostError("set inet %s %s does not exist: load %s first" % (table, name, plan["nft"]["file"]))
        if have is not None and have != want:
            changes.append((name, want))
    if check:
        done = apply_front(plan["paths"], text, front, check=True)
    else:
        if changes:
            script = sets_script(table, changes)
            _nft(script, check=True)
        done = apply_front(plan["paths"], text, front)
        if changes:
            _nft(script, check=False)
        directory = lists_dir(plan)
        if os.path.isdir(directory):
            _prune(directory, plan)
            summary = {sid: {"count": len(lost), "sample": lost[:SAMPLES]} for sid, lost in conflicts.items()}
            applied = {"conflicts": summary, "domains": {n: len(m["domains"]) for n, m in merged.items()}}
            if _read_json(os.path.join(directory, "applied.json")) != applied:
                _write(os.path.join(directory, "applied.json"), json.dumps(applied, sort_keys=True) + "\n")
        if log and (done or changes):
            lines = (
                ["the front's lists (%d domains, %s)" % (sum(len(m["domains"]) for m in merged.values()), done)]
                if done
                else []
            )
            lines += ["set %s (%d networks)" % (name, len(nets)) for name, nets in changes]
            log("splitroute apply: %s" % ", ".join(lines))
    return {
        "changed": bool(done or changes),
        "servers_file": bool(done),
        "front": done,
        "sets": [name for name, _nets in changes],
        "conflicts": {sid: len(lost) for sid, lost in conflicts.items() if lost},
    }


def _prune(directory, plan):
    """Remove the copies and states of sources the plan no longer has."""
    keep = {s["id"] for _t, s in sources(plan)} | {"applied"}
    for entry in os.listdir(directory):
        stem, dot, ext = entry.partition(".")
        if dot and ext in ("json", "list") and stem not in keep:
            os.unlink(os.path.join(directory, entry))


# ---------------------------------------------------------------- commands


def setup_apply(parser):
    parser.add_argument("--check", action="store_true", help="report what would change, write nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--plan-stdin", action="store_true", help="read the client's plan from stdin (check mode)")


def setup_preresolve(parser):
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")


def setup_refresh(parser):
    parser.add_argument("--force", action="store_true", help="fetch every source, due or not")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _print(args, result):
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")


def apply_command(plan, args, log):
    result = apply(plan, check=args.check, log=log)
    _print(args, result)
    return 0


def refresh_command(plan, args, log):
    directory = lists_dir(plan)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    now = _now()
    results = {}
    for _tunnel, source in sources(plan):
        state = read_state(directory, source)
        if due(state, source, now, args.force):
            results[source["id"]] = refresh_source(directory, source, now, log)
    applied = apply(plan, log=log) if "changed" in results.values() else None
    if applied and applied["servers_file"]:
        start_preresolve(plan)
    _print(args, {"sources": results, "applied": applied})
    # a source that failed is the status's problem (splitroute status, the metrics, the journal), not a
    # failed unit: a list server's outage must not leave the host "degraded"; a failed apply is (HostError)
    return 0


# ---------------------------------------------------------------- pre-resolution

# each query's own time limit (no retry: the next start or refresh asks again)
QUERY_TIMEOUT = 2.0


def dns_query(qid, name, qtype):
    """A DNS query message (recursion desired) for NAME (ASCII, as normalize_domain gives it) and QTYPE."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)


def dns_answer_id(message):
    """(id, rcode) of a DNS response, or None when MESSAGE is not one."""
    if len(message) < 12:
        return None
    qid, flags = struct.unpack(">HH", message[:4])
    return (qid, flags & 0xF) if flags & 0x8000 else None


def preresolve_queries(plan, merged):
    """[(name, qtype)] of the tunnels with preresolve: every listed name, A and AAAA for the families the
    tunnel carries, in the plan's order."""
    out = []
    for t in plan.get("tunnels", []):
        if not t.get("preresolve"):
            continue
        types = ([1] if t.get("has_v4", True) else []) + ([28] if t.get("has_v6", True) else [])
        out.extend((name, qtype) for name in merged[t["name"]]["domains"] for qtype in types)
    return out


def resolve_all(queries, server, rate, clock=time.monotonic):
    """Ask SERVER ((address, port), the front resolver) QUERIES at most RATE a second, each once, waiting
    QUERY_TIMEOUT for its answer. Returns {"asked", "answered", "failed" (an error rcode), "timed_out"}."""
    sock = socket.socket(socket.AF_INET6 if ":" in server[0] else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    pending, counts = {}, {"asked": 0, "answered": 0, "failed": 0, "timed_out": 0}
    next_id = random.randrange(65536)
    start = clock()

    def collect(wait):
        ready, _w, _x = select.select([sock], [], [], max(0.0, wait))
        while ready:
            try:
                message = sock.recv(4096)
            except BlockingIOError:
                break
            got = dns_answer_id(message)
            if got and got[0] in pending:
                del pending[got[0]]
                counts["answered" if got[1] in (0, 3) else "failed"] += 1
        now = clock()
        for qid in [q for q, sent in pending.items() if now - sent > QUERY_TIMEOUT]:
            del pending[qid]
            counts["timed_out"] += 1

    try:
        for index, (name, qtype) in enumerate(queries):
            due_at = start + index / float(rate)
            collect(due_at - clock())
            while clock() < due_at:  # an answer ended the wait early
                collect(due_at - clock())
            while next_id in pending:
                next_id = (next_id + 1) % 65536
            try:
                sock.sendto(dns_query(next_id, name, qtype), server)
            except OSError:
                counts["timed_out"] += 1
                continue
            pending[next_id] = clock()
            counts["asked"] += 1
            next_id = (next_id + 1) % 65536
        deadline = clock() + QUERY_TIMEOUT
        while pending and clock() < deadline:
            collect(min(0.2, deadline - clock()))
        counts["timed_out"] += len(pending)
    finally:
        sock.close()
    return counts


def preresolve_command(plan, args, log):
    merged, _conflicts, _text = compute(plan)
    queries = preresolve_queries(plan, merged)
    if not queries:
        return 0
    rate = plan.get("lists", {}).get("preresolve_rate") or 50
    started = time.monotonic()
    counts = resolve_all(queries, (_names.CLIENT_FRONT_ADDRESSES[0], 53), rate)
    log(
        "splitroute preresolve: %d queries in %.1f s (at most %d/s): %d answered, %d failed, %d timed out"
        % (counts["asked"], time.monotonic() - started, rate, counts["answered"], counts["failed"], counts["timed_out"])
    )
    _print(args, counts)
    return 0


def start_preresolve(plan):
    """After a refresh that changed a list: run the pre-resolution again, in its own unit (not waited for)."""
    if any(t.get("preresolve") for t in plan.get("tunnels", [])):
        subprocess.run(["systemctl", "restart", "--no-block", _names.PRERESOLVE_UNIT], capture_output=True, check=False)
