# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Exit health and the choice of an exit (the client's failover, `splitroute health`).

An exit is a tunnel (its WireGuard interface). It is checked every `interval` seconds by two
things, both of which must hold: its handshake is at most `handshake_max_age` old (0: not
checked), and a probe sent through that exit only answers within `timeout`: an ICMP echo, or an
HTTP request (a status line 1xx-4xx). A probe leaves by the exit's own mark and the exit's own
table, where a host route for the probe target names the exit's interface (_names.probe_routes):
it never follows the failover of the tunnel it probes.

Hysteresis (step): an exit in use, or one that was healthy, leaves after `fall` failed checks in
a row; a down exit comes back after `rise` good checks in a row. At start nothing is known: the
first good check makes an exit healthy, `fall` failures down (fail-closed: nothing is routed to an
exit before one check found it up). choose() takes the first healthy exit in the tunnel's order,
or, sticky, the one in use while it stays healthy.

The pure parts (CHECK_DEFAULTS, step, choose, icmp_packet, parse_icmp_reply, http_ok) have no
I/O; probe_icmp, probe_http and handshake_ages do the checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import select
import socket
import struct
import subprocess
import time

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    parse_address,
    want_bool,
    want_dict,
    want_int,
    want_list,
)

CHECK_DEFAULTS = {
    "method": "icmp",
    "interval": 2,
    "timeout": 1,
    "fall": 3,
    "rise": 3,
    "sticky": False,
    # WireGuard's REJECT_AFTER_TIME (180 s) plus its retries: a peer that answers renews it at least every
    # 120 s while probes flow
    "handshake_max_age": 200,
    "port": 80,
    "path": "/",
}
METHODS = ("icmp", "http")
SO_MARK = getattr(socket, "SO_MARK", 36)
# the bounds of each number of a check (settings())
_BOUNDS = (("interval", 1, 3600), ("timeout", 1, 60), ("fall", 1, 100), ("rise", 1, 100),
           ("handshake_max_age", 0, 86400), ("port", 1, 65535))  # fmt: skip
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,200}\Z")


def settings(raw, where, default_targets, families, keys=None):
    """(check settings, errors) of an exit's `health` RAW (None: the defaults) at WHERE (the variable's path):
    the defaults for what RAW leaves out, the numbers in their bounds, the HTTP path on one line, the probe
    targets (addresses; DEFAULT_TARGETS when RAW gives none), each of a family in FAMILIES (the exit carries
    it). KEYS: the keys RAW may have (default: all of CHECK_DEFAULTS and targets). Shared by the roles' plans."""
    errors = []
    keys = set(CHECK_DEFAULTS) | {"targets"} if keys is None else set(keys)
    raw, error = want_dict({} if raw is None else raw, where)
    if error:
        errors.append(error)
        raw = {}
    unknown = sorted(map(str, set(raw) - keys))
    if unknown:
        errors.append("%s: unknown keys %s" % (where, ", ".join(unknown)))
    out = {}
    method = raw.get("method", CHECK_DEFAULTS["method"])
    if method not in METHODS:
        errors.append("%s.method: %r is not one of %s" % (where, method, ", ".join(METHODS)))
    out["method"] = method
    for key, lo, hi in _BOUNDS:
        value = raw.get(key, CHECK_DEFAULTS[key]) if key in keys else CHECK_DEFAULTS[key]
        out[key], error = want_int(value, "%s.%s" % (where, key), lo, hi)
        if error:
            errors.append(error)
    if isinstance(out["interval"], int) and isinstance(out["timeout"], int) and out["timeout"] > out["interval"]:
        errors.append("%s.timeout: at most the interval (%ss)" % (where, out["interval"]))
    out["sticky"], error = want_bool(raw.get("sticky", CHECK_DEFAULTS["sticky"]), where + ".sticky")
    if error:
        errors.append(error)
    path = raw.get("path", CHECK_DEFAULTS["path"])
    if not isinstance(path, str) or not _PATH.match(path):
        errors.append("%s.path: an HTTP path starting with / (letters, digits and URL punctuation)" % where)
    out["path"] = path
    targets = list(default_targets)
    if raw.get("targets") is not None:
        values, error = want_list(raw["targets"], where + ".targets")
        targets = []
        if error:
            errors.append(error)
        for index, value in enumerate(values or []):
            addr, error = parse_address(value, what="%s.targets[%d]" % (where, index))
            if error:
                errors.append(error)
            else:
                targets.append(str(addr))
    for target in targets:
        family = _family(target)
        if family not in families:
            errors.append("%s.targets: %s needs an IPv%d address on the exit" % (where, target, family))
    out["targets"] = targets
    return out, errors


def new_state():
    """An exit's state before its first check."""
    return {"healthy": None, "good": 0, "bad": 0, "checks": 0, "failures": 0, "rtt": None, "reason": "not checked"}


def step(state, ok, fall, rise, rtt=None, reason=""):
    """The exit's state after one check (OK: it passed; RTT: seconds, REASON: why it failed)."""
    state = dict(state or new_state())
    state["checks"] += 1
    state["rtt"] = rtt if ok else None
    if ok:
        state["good"], state["bad"] = state["good"] + 1, 0
        state["reason"] = "ok"
        if state["healthy"] is None or (not state["healthy"] and state["good"] >= rise):
            state["healthy"] = True
    else:
        state["good"], state["bad"] = 0, state["bad"] + 1
        state["failures"] += 1
        state["reason"] = reason or "failed"
        if state["healthy"] is not False and state["bad"] >= fall:
            state["healthy"] = False
    return state


def choose(order, healthy, current=None, sticky=False):
    """The exit for a tunnel: ORDER, its exits (itself first); HEALTHY, exit -> True, False or None (not known
    yet); CURRENT, the one in use (None: none, the blackhole). The first healthy exit, but nothing moves past
    an exit not known yet (at start: traffic does not go to a fallback for the moment its primary takes to
    answer). Sticky: the one in use while it stays healthy. None when none is healthy."""
    if sticky and current in order and healthy.get(current):
        return current
    for name in order:
        if healthy.get(name):
            return name
        if healthy.get(name) is None:
            return current if current in order and healthy.get(current) else None
    return None


# ---------------------------------------------------------------- probes


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_packet(family, ident, seq, payload=b"splitroute"):
    """An echo request; for IPv6 the kernel fills the checksum."""
    kind = 8 if family == 4 else 128
    header = struct.pack("!BBHHH", kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    if family == 6:
        return header + payload
    return struct.pack("!BBHHH", kind, 0, _checksum(header + payload), ident & 0xFFFF, seq & 0xFFFF) + payload


def parse_icmp_reply(family, data, ident, seq):
    """Whether DATA (what a raw socket returns: IPv4 with its IP header, IPv6 without) is the echo reply."""
    if family == 4:
        if len(data) < 20:
            return False
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return False
    kind, code, _sum, rid, rseq = struct.unpack("!BBHHH", data[:8])
    return kind == (0 if family == 4 else 129) and code == 0 and rid == ident & 0xFFFF and rseq == seq & 0xFFFF


def _family(address):
    return 6 if ":" in address else 4


def probe_icmp(target, mark, timeout, seq=1):
    """(rtt seconds or None, reason): one echo to TARGET from a raw socket with SO_MARK MARK."""
    family = _family(target)
    af, proto = (socket.AF_INET, socket.IPPROTO_ICMP) if family == 4 else (socket.AF_INET6, socket.IPPROTO_ICMPV6)
    ident = (os.getpid() ^ (seq << 8)) & 0xFFFF
    try:
        sock = socket.socket(af, socket.SOCK_RAW, proto)
    except OSError as exc:
        return None, "icmp socket: %s" % exc.strerror
    with sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
            if family == 6:
                # only echo replies (ICMP6_FILTER: block all but type 129)
                blocked = [0xFFFFFFFF] * 8
                blocked[129 >> 5] &= ~(1 << (129 & 31))
                sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("=8I", *blocked))
            start = time.monotonic()
            sock.sendto(icmp_packet(family, ident, seq), (target, 0))
        except OSError as exc:
            return None, "icmp %s: %s" % (target, exc.strerror)
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                return None, "icmp %s: no answer in %ss" % (target, timeout)
            try:
                data, peer = sock.recvfrom(2048)
            except OSError as exc:
                return None, "icmp %s: %s" % (target, exc.strerror)
            if socket.inet_pton(af, peer[0]) == socket.inet_pton(af, target) and parse_icmp_reply(
                family, data, ident, seq
            ):
                return time.monotonic() - start, "ok"


def http_ok(status_line):
    """Whether an HTTP status line says the server answered (1xx to 4xx; 5xx: it failed)."""
    parts = status_line.split(None, 2)
    return (
        len(parts) >= 2
        and parts[0].startswith("HTTP/")
        and len(parts[1]) == 3
        and parts[1].isdigit()
        and "1" <= parts[1][0] <= "4"
    )


def probe_http(target, mark, timeout, port=80, path="/"):
    """(rtt seconds or None, reason): GET PATH from TARGET:PORT over a socket with SO_MARK MARK."""
    af = socket.AF_INET6 if _family(target) == 6 else socket.AF_INET
    host = "[%s]" % target if af == socket.AF_INET6 else target
    try:
        sock = socket.socket(af, socket.SOCK_STREAM)
    except OSError as exc:
        return None, "http socket: %s" % exc.strerror
    with sock:
        start = time.monotonic()
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
            sock.settimeout(timeout)
            sock.connect((target, port))
            request = "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: splitroute-health\r\n\r\n" % (path, host)
            sock.sendall(request.encode("ascii"))
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                chunk = sock.recv(1024 - len(head))
                if not chunk:
                    break
                head += chunk
        except (OSError, socket.timeout) as exc:
            return None, "http %s:%d: %s" % (target, port, getattr(exc, "strerror", None) or exc or "timed out")
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if not http_ok(line):
            return None, "http %s:%d: %r" % (target, port, line[:80])
        return time.monotonic() - start, "ok"


def handshake_ages(interface, now=None):
    """Seconds since each peer's latest handshake on INTERFACE (None: never), or None when wg cannot read it."""
    try:
        proc = subprocess.run(
            ["wg", "show", interface, "latest-handshakes"], capture_output=True, text=True, check=False, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    now = time.time() if now is None else now
    ages = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            stamp = int(fields[1])
            ages.append(None if stamp == 0 else max(0.0, now - stamp))
    return ages


NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000


def _setns(fd):
    if hasattr(os, "setns"):  # Python 3.12
        os.setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name):
    """This thread in network namespace NAME (ip netns: /run/netns/NAME) for the block, then back: the sockets
    made in it stay there (a probe leaves by that namespace's routes only). OSError when there is no NAME."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
        try:
            _setns(there)
        finally:
            os.close(there)
        try:
            yield
        finally:
            _setns(here)
    finally:
        os.close(here)


def _tunnel_up(prefix):
    """Whether an interface named PREFIX* is in this thread's namespace (OpenVPN's tun device)."""
    return any(name.startswith(prefix) for _index, name in socket.if_nameindex())


def check(exit_, probe=None, ages=None):
    """(ok, rtt, reason) of one check of EXIT_ (the plan's failover exit: interface, mark, check, targets).
    An exit with `netns` (a gateway's provider) is checked inside that namespace: its tunnel (an interface
    named `tunnel`*, OpenVPN's tun) is there, and the probes leave by that namespace's routes.
    PROBE, AGES: the probe and handshake functions (tests pass their own)."""
    if not exit_.get("netns"):
        return _check(exit_, probe, ages)
    try:
        with in_netns(exit_["netns"]):
            if not _tunnel_up(exit_["tunnel"]):
                return False, None, "namespace %s: no %s* interface (the tunnel is down)" % (
                    exit_["netns"], exit_["tunnel"])  # fmt: skip
            return _check(exit_, probe, ages)
    except OSError as exc:
        return False, None, "namespace %s: %s" % (exit_["netns"], exc.strerror or exc)


def _check(exit_, probe=None, ages=None):
    """The probes go first: on an interface with no session yet, the first one starts the handshake."""
    settings = exit_["check"]
    rtts = []
    for target in exit_["targets"]:
        if probe is not None:
            rtt, reason = probe(target)
        elif settings["method"] == "http":
            rtt, reason = probe_http(target, exit_["mark"], settings["timeout"], settings["port"], settings["path"])
        else:
            rtt, reason = probe_icmp(target, exit_["mark"], settings["timeout"])
        if rtt is None:
            return False, None, reason
        rtts.append(rtt)
    if settings["handshake_max_age"]:
        found = (ages or handshake_ages)(exit_["interface"])
        if found is None:
            return False, None, "%s: no such WireGuard interface" % exit_["interface"]
        fresh = [a for a in found if a is not None and a <= settings["handshake_max_age"]]
        if not fresh:
            return False, None, "%s: no handshake in the last %ds" % (exit_["interface"], settings["handshake_max_age"])
    return True, max(rtts) if rtts else None, "ok"
