# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Domain lists in the formats people publish them, read into domains and networks (pure, no I/O).

One list may mix its lines' formats:

- a domain per line (``example.com``), comments from ``#`` at the start of a line or after
  whitespace (``example.com  # why``);
- dnsmasq lines ``server=/d1/d2/...``, ``nftset=/d/...``, ``ipset=/d/...`` and ``address=/d/...``:
  only their domains are taken, whatever they send them to;
- hosts-file lines (``0.0.0.0 ads.example.com tracker.example.net``): the names after the
  address (the usual local names, ``localhost`` and friends, are skipped);
- a network or an address (``203.0.113.0/24``, ``2001:db8::1``): a static network of the tunnel.

Every domain goes through the collection's one domain check (_dnsmasq.normalize_domain), so a line
that would end or split a dnsmasq line or option (a newline, ``/``, ``#``, ``,``, whitespace or NUL
inside a name) is an invalid line: counted with its number and the reason, never taken. What a
caller does with invalid lines (refuse the list, or keep the last good one past a threshold) is
its own rule.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.splitroute.vpn.plugins.module_utils._dnsmasq import InputError, normalize_domain

# dnsmasq options whose /domain/ part is taken
DNSMASQ_KEYS = ("server", "nftset", "ipset", "address")
# names of the machine itself in hosts files, never a listed domain
HOSTS_LOCAL_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",
    }
)


class ListContent:
    """What one list holds: domains (canonical, each once, in order), networks4 / networks6 (each once,
    in order), invalid ([(line number, reason)]) and lines (the lines that were not blank or comments)."""

    def __init__(self):
        self.domains, self.networks4, self.networks6, self.invalid = [], [], [], []
        self.lines = 0
        self._seen = set()

    def _add(self, kind, value):
        if (kind, value) not in self._seen:
            self._seen.add((kind, value))
            getattr(self, kind).append(value)


def _strip_comment(line):
    """LINE without its comment: from a # at its start or after whitespace (a # inside a word stays and makes
    the word invalid)."""
    for index, ch in enumerate(line):
        if ch == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def _network(text):
    """TEXT as a network (an address is a /32 or /128), None if it is not one; ValueError when it looks like
    a network but is not a valid one (host bits set, a bad prefix)."""
    if "/" in text:
        head = text.split("/", 1)[0]
        try:
            ipaddress.ip_address(head)
        except ValueError:
            return None
        return ipaddress.ip_network(text, strict=True)
    try:
        return ipaddress.ip_network(ipaddress.ip_address(text))
    except ValueError:
        return None


def _address(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _dnsmasq_domains(line):
    """The domains of a dnsmasq KEY=/d1/d2/target line, or None when LINE is not one."""
    key, sep, rest = line.partition("=")
    if not sep or key not in DNSMASQ_KEYS or not rest.startswith("/"):
        return None
    parts = rest[1:].split("/")
    if len(parts) < 2:
        raise InputError("a dnsmasq %s= line needs /domain/: %r" % (key, line))
    domains = parts[:-1]
    if any(d == "#" for d in domains):
        raise InputError("%s=/#/ means every domain: not a list entry" % key)
    if any(d == "" for d in domains):
        raise InputError("an empty domain in %r" % line)
    return domains


def read_list(text):
    """Read TEXT (a list's whole text) into a ListContent."""
    out = ListContent()
    if not isinstance(text, str):
        out.invalid.append((0, "not text"))
        return out
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        out.lines += 1
        try:
            _read_line(line, out)
        except (InputError, ValueError) as exc:
            out.invalid.append((number, str(exc)))
    return out


def _read_line(line, out):
    """One non-blank line into OUT; raises InputError or ValueError for an invalid one (OUT unchanged)."""
    if "\x00" in line:
        raise InputError("a NUL character")
    dnsmasq = _dnsmasq_domains(line)
    if dnsmasq is not None:
        domains = [normalize_domain(d) for d in dnsmasq]
        for domain in domains:
            out._add("domains", domain)
        return
    fields = _strip_comment(line).split()
    if not fields:
        return
    if len(fields) > 1:
        if _address(fields[0]) is None:
            raise InputError("%r: one domain or network per line (or a hosts-file line: ADDRESS NAME...)" % line)
        names = [f for f in fields[1:] if f.lower() not in HOSTS_LOCAL_NAMES]
        domains = [normalize_domain(name) for name in names]
        for domain in domains:
            out._add("domains", domain)
        return
    net = _network(fields[0])
    if net is not None:
        out._add("networks%d" % net.version, str(net))
        return
    out._add("domains", normalize_domain(fields[0]))


# ---------------------------------------------------------------- sources (lists the host fetches or reads)

# a source's defaults (client_plan fills them in; the host program takes the plan's values as they are)
SOURCE_DEFAULTS = {"interval": 86400, "timeout": 30, "max_bytes": 16 << 20, "max_invalid": 50}
# the least interval between two fetches of one source
MIN_INTERVAL = 5
# the most entries of all sources of a host (the front resolver holds one server= line per domain)
MAX_ENTRIES = 2000000


def source_id(tunnel, where):
    """The stable name of TUNNEL's source WHERE (its URL or path): the names of its last good copy and state
    on the host. The same source of another tunnel, or another source, gets another name."""
    digest = hashlib.sha256(("%s\0%s" % (tunnel, where)).encode("utf-8")).hexdigest()
    return "%s-%s" % (tunnel, digest[:12])


def read_body(body, content_type="", max_invalid=SOURCE_DEFAULTS["max_invalid"]):
    """(ListContent, None) for a fetched or read BODY (bytes) that may replace a source's last good copy, or
    (ListContent or None, reason) when it may not: an empty body, an HTML page (a captive portal, an error
    page served with 200), text that is not UTF-8, no entry at all, or more invalid lines than MAX_INVALID."""
    if not isinstance(body, bytes) or not body.strip():
        return None, "an empty body"
    head = body.lstrip()[:64].lower()
    if content_type == "text/html" or head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<")):
        return None, "an HTML page, not a list"
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, "not UTF-8 text (byte %d)" % exc.start
    content = read_list(text)
    if len(content.invalid) > max_invalid:
        number, reason = content.invalid[0]
        return content, "%d invalid lines, more than the %d allowed (line %d: %s)" % (
            len(content.invalid),
            max_invalid,
            number,
            reason,
        )
    if not content.domains and not content.networks4 and not content.networks6:
        return content, "no domain or network in %d line(s)" % content.lines
    return content, None


def merge(tunnels, contents):
    """The domains and networks every tunnel routes, with its sources' last good copies.

    TUNNELS: the plan's tunnels in order (name, domains, sources: [{id}]); CONTENTS: source id -> ListContent
    (a source without a good copy is missing). The rule for a domain listed for two tunnels, from any source:
    the first tunnel in the plan's order takes it; the other tunnel's source counts it as a conflict. (Among
    inventory and controller files the same case is an error of the plan: nothing is applied.) Returns
    tunnel -> {"domains": sorted, "networks4"/"networks6": the sources' networks, collapsed} and
    source id -> [(domain, the tunnel that has it)]."""
    owner = {}
    for t in tunnels:
        for domain in t.get("domains", []):
            owner.setdefault(domain, t["name"])
    out, conflicts = {}, {}
    for t in tunnels:
        domains = set(t.get("domains", []))
        nets = {4: [], 6: []}
        for source in t.get("sources", []):
            content = contents.get(source["id"])
            if content is None:
                continue
            lost = []
            for domain in content.domains:
                have = owner.setdefault(domain, t["name"])
                if have == t["name"]:
                    domains.add(domain)
                else:
                    lost.append((domain, have))
            conflicts[source["id"]] = lost
            # only the families the tunnel carries (has_v4, has_v6)
            for family in (4, 6):
                if t.get("has_v%d" % family, True):
                    nets[family] += [ipaddress.ip_network(n) for n in getattr(content, "networks%d" % family)]
        out[t["name"]] = {
            "domains": sorted(domains),
            "networks4": [str(n) for n in ipaddress.collapse_addresses(nets[4])],
            "networks6": [str(n) for n in ipaddress.collapse_addresses(nets[6])],
        }
    return out, conflicts
