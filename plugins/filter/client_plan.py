# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: client_plan
short_description: Validate the client role's tunnels and compute everything derived from them
version_added: 0.1.0
author:
  - splitroute maintainers (@splitroute)
description:
  - Used by the C(splitroute.vpn.client) role. Checks every tunnel (names, addresses, keys, endpoint, networks,
    users, ports, DNS servers, domains) and the role-wide settings, and fails with one message listing every
    problem, naming each variable and its path (C(splitroute_client_tunnels[1].peer.endpoint)), before the role
    changes anything.
  - Every address goes through the collection's one address parser, which refuses IPv6 scope ids (C(%...)),
    control characters and values that are not strings, so no value can add a line to a file the role writes.
    A string where a list is expected is refused, never split into characters. Numbers may be given as digit
    strings and booleans as Ansible's boolean words, as C(-e) gives them.
  - Returns the tunnels with their numbers filled in (fwmark, routing table, rule priority, back resolver port),
    set names, and domain lists merged from the tunnel, from inventory variables and from files, normalised to
    ASCII and deduplicated.
  - The plan carries no key material - C(private_key) and C(peer.preshared_key) are flags (whether one is given);
    the plan may be printed at any verbosity. The values reach the role's C(no_log) tasks only through
    C(client_secrets), from the same file.
  - The same file provides C(client_settings) (the role-wide settings, validated and typed),
    C(client_secrets) (tunnel name to its C(private_key) and C(preshared_key), for C(no_log) tasks only) and
    C(client_domain_files) (the paths of the tunnels' domain files, for the role to read).
options:
  _input:
    description: The role's O(splitroute_client_tunnels).
    type: list
    elements: dict
    required: true
  settings:
    description:
      - Role-wide settings (state, set_timeout, max_cache_ttl, max_ttl, cache_size, table_base, priority_base,
        back_port, upstream_dns, wireguard_userspace, dns_redirect, tailscale).
      - With state C(absent) the peers' keys are neither needed nor checked.
    type: dict
    required: true
  domain_lists:
    description:
      - Inventory variables that add domains, by variable name (C(splitroute_client_domains__*)), each a dict of
        tunnel name to list of domains.
    type: dict
    default: {}
  domain_files:
    description: The text of each tunnel's domain file, by the path the tunnel gives (one domain a line, C(#) comments).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Plan the tunnels
  ansible.builtin.set_fact:
    plan: "{{ tunnels | splitroute.vpn.client_plan({'set_timeout': 3600, 'max_cache_ttl': 300, 'max_ttl': 300,
      'table_base': 100, 'priority_base': 1000, 'back_port': 5301}) }}"
"""

RETURN = r"""
_value:
  description: The tunnels, validated and completed; no key material (only flags).
  type: list
  elements: dict
"""

import base64
import ipaddress
import json
import posixpath
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.datatag import native_type_name

from ansible_collections.splitroute.vpn.plugins.module_utils import (
    _bypass,
    _forward,
    _health,
    _lists,
    _names,
    _releases,
)
from ansible_collections.splitroute.vpn.plugins.module_utils._dnsmasq import (
    InputError,
    compile_config,
    normalize_domain,
)
from ansible_collections.splitroute.vpn.plugins.module_utils._fetch import check_url, normalize_pin
from ansible_collections.splitroute.vpn.plugins.module_utils._host import PLAN_VERSION, PROGRAM
from ansible_collections.splitroute.vpn.plugins.module_utils._host_client import ROTATE_MARGIN, prune, rotation
from ansible_collections.splitroute.vpn.plugins.module_utils._lists import read_list
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    check_ifname,
    check_nft_name,
    check_priorities,
    check_program,
    check_tables,
    parse_address,
    parse_interface,
    parse_network,
    want_bool,
    want_dict,
    want_int,
    want_list,
    want_str,
)

TUNNELS = "splitroute_client_tunnels"
# A tunnel's name is its interface, the name of its wg-quick file (wg-quick: [a-zA-Z0-9_=+.-]{1,15}), the stem
# of its nftables sets (an nft identifier starts with a letter) and the instance of its units: only what all of
# them take, so a name that passes here cannot fail at `nft -c` after the keys and wg.conf are written.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,14}")
_ENDPOINT = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_WG_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
_KNOWN = {
    "name", "address", "private_key", "peer", "mtu", "dns", "domains", "domain_files", "domain_sources",
    "networks", "users", "ports", "fwmark", "table", "priority", "back_port", "preresolve", "fallback", "health",
}  # fmt: skip
_SOURCE_KNOWN = {"url", "path", "interval", "timeout", "max_bytes", "max_invalid", "ca", "sha256"}
_DURATION = re.compile(r"^([0-9]+)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")
_PEER_KNOWN = {"public_key", "endpoint", "preshared_key", "allowed_ips", "persistent_keepalive"}
_PORT_KNOWN = {"proto", "port"}
_DEFAULT_ALLOWED = ["0.0.0.0/0", "::/0"]
# The role's defaults (defaults/main.yml), for a setting the caller leaves out.
_DEFAULTS = {
    "state": "present",
    "set_timeout": 3600,
    "max_cache_ttl": 300,
    "max_ttl": 300,
    "cache_size": 10000,
    "table_base": 100,
    "priority_base": 1000,
    "back_port": 5301,
    "upstream_dns": [],
    "wireguard_userspace": "",
    "dns_redirect": True,
    "tailscale": False,
    "preresolve_rate": 50,
    "dns_bypass": {},
    "forward": {},
    "fwmark_mask": _names.FWMARK_MASK,
}
# absent.yml clears the first 10 tables after table_base (tunnels removed from inventory) and, in both states,
# the rules at priority_base .. priority_base + 99.
SCOPE_TABLES = _names.SCOPE_TABLES
SCOPE_PRIORITIES = _names.SCOPE_PRIORITIES


class _Errors(list):
    def take(self, pair):
        """(value, error) from a want_* or parse_* helper: keep the error, return the value."""
        value, error = pair
        if error:
            self.append(error)
        return value

    def add(self, error):
        if error:
            self.append(error)


def _native(value):
    """VALUE with plain Python types: Ansible hands values over tagged (_AnsibleTaggedStr), whose type names would
    reach the messages; a tuple becomes a list."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {_native(k): _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    return value


def _check_name(name, what):
    """Error for a tunnel name that is not valid everywhere it goes, or None."""
    value, error = want_str(name, what)
    if error:
        return error
    if (
        not _NAME.fullmatch(value)
        or check_ifname(value, what)
        or check_nft_name(value + _names.LONGEST_SET_SUFFIX, what)
    ):
        return (
            "%s %r is invalid: it names the interface, the wg-quick file, the nftables sets (NAME_v4_a) and the "
            "units (wg-quick@NAME): 1-15 characters, a letter first, then letters, digits, _ . -" % (what, value)
        )
    return None


def _key(value, what, errors):
    """A WireGuard key (44 characters of base64). The message never holds the value: it may be a secret."""
    text, error = want_str(value, what)
    if error:
        errors.append(error)
        return None
    try:
        raw = base64.b64decode(text, validate=True) if _WG_KEY.fullmatch(text) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        errors.append("%s is not a WireGuard key (44 characters of base64)" % what)
        return None
    return text


def _given(value):
    """An optional key is given unless it is absent, null or empty."""
    return value is not None and value != ""


def _settings(settings, errors):
    """The role-wide settings, typed; every problem goes to ERRORS under the variable's name."""
    settings = errors.take(want_dict(settings, "settings")) or {}
    out = {}

    def get(key):
        return settings.get(key, _DEFAULTS[key])

    def var(key):
        return "splitroute_client_" + key

    state = errors.take(want_str(get("state"), var("state")))
    if state is not None and state not in ("present", "absent"):
        errors.append("%s: must be present or absent, not %r" % (var("state"), state))
        state = None
    out["state"] = state or "present"
    for key, lo, hi in (
        ("set_timeout", 1, 2**31 - 1),
        ("max_cache_ttl", 0, 2**31 - 1),
        ("max_ttl", 0, 2**31 - 1),
        ("cache_size", 0, 2**31 - 1),
        ("table_base", 1, 0xFFFFFFFF),
        ("priority_base", 1, 32765),
        ("back_port", 1, 65535),
        ("preresolve_rate", 1, 10000),
        ("fwmark_mask", 1, 0xFFFFFFFF),
    ):
        out[key] = errors.take(want_int(get(key), var(key), lo, hi))
    for key in ("dns_redirect", "tailscale"):
        out[key] = errors.take(want_bool(get(key), var(key)))
    if None not in (out["set_timeout"], out["max_cache_ttl"], out["max_ttl"]):
        rot = rotation(out["max_cache_ttl"], out["max_ttl"])
        if out["set_timeout"] < rot["removal_bound"]:
            errors.append(
                "splitroute_client_set_timeout (%d s) must be at least %d s: it is only a backstop behind the sets' "
                "rotation (period %d s from 2 x max_cache_ttl + max_ttl + %d s, timer every %d s), and an element must "
                "outlive two rotations"
                % (
                    out["set_timeout"],
                    rot["removal_bound"],
                    rot["period"],
                    ROTATE_MARGIN,
                    rot["interval"],
                )
            )
    if out["table_base"] is not None:
        errors.add(check_tables(out["table_base"], SCOPE_TABLES, var("table_base")))
    if out["priority_base"] is not None:
        errors.add(
            check_priorities(out["priority_base"], out["priority_base"] + SCOPE_PRIORITIES - 1, var("priority_base"))
        )
    userspace = get("wireguard_userspace")
    if userspace is None:
        userspace = ""
    userspace = errors.take(want_str(userspace, var("wireguard_userspace"), allow_empty=True))
    if userspace is not None:
        errors.add(check_program(userspace, var("wireguard_userspace")))
    out["wireguard_userspace"] = userspace
    upstream = []
    for index, item in enumerate(errors.take(want_list(get("upstream_dns"), var("upstream_dns"))) or []):
        addr = errors.take(parse_address(item, what="%s[%d]" % (var("upstream_dns"), index)))
        if addr is not None:
            upstream.append(str(addr))
    out["upstream_dns"] = upstream
    bypass, found = _bypass.settings(get("dns_bypass"), var("dns_bypass"))
    errors.extend(found)
    bypass["doh_sources"] = _sources(
        bypass["doh_sources"], var("dns_bypass") + ".doh_sources", _names.DNS_BYPASS_SOURCES, errors
    )
    out["dns_bypass"] = bypass
    forward, found = _forward.settings(get("forward"), var("forward"))
    errors.extend(found)
    out["forward"] = forward
    return out


def _addresses(raw, what, errors, parse):
    """A list of addresses, each through PARSE; returns the parsed objects."""
    out = []
    for index, item in enumerate(errors.take(want_list(raw, what)) or []):
        obj = errors.take(parse(item, what="%s[%d]" % (what, index)))
        if obj is not None:
            out.append(obj)
    return out


def _peer(raw, where, keys_needed, errors):
    peer = errors.take(want_dict(raw, where)) or {}
    if raw is None:
        errors.append("%s: is required (public_key, endpoint)" % where)
    unknown = sorted(map(str, set(peer) - _PEER_KNOWN))
    if unknown:
        errors.append("%s: unknown keys %s" % (where, ", ".join(unknown)))
    out = {"public_key": None, "preshared_key": False, "persistent_keepalive": None}
    # Removing a tunnel needs no key: the other side's may be gone already (revert.yml).
    if keys_needed:
        out["public_key"] = _key(peer.get("public_key"), where + ".public_key", errors)
        if _given(peer.get("preshared_key")):
            out["preshared_key"] = _key(peer["preshared_key"], where + ".preshared_key", errors) is not None
    if peer.get("persistent_keepalive") is not None:
        out["persistent_keepalive"] = errors.take(
            want_int(peer["persistent_keepalive"], where + ".persistent_keepalive", 0, 65535)
        )
    what = where + ".endpoint"
    endpoint = errors.take(want_str(peer.get("endpoint"), what))
    if endpoint is not None:
        match = _ENDPOINT.fullmatch(endpoint)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            errors.append("%s %r is not HOST:PORT or [IPV6]:PORT" % (what, endpoint))
        elif match.group("v6") is not None:
            host = errors.take(parse_address(match.group("v6"), 6, what + " host"))
            if host is not None:
                out["endpoint"] = endpoint
                out["endpoint_host"] = str(host)
        else:
            out["endpoint"] = endpoint
            out["endpoint_host"] = match.group("host")
    allowed = peer.get("allowed_ips")
    nets = _addresses(allowed, where + ".allowed_ips", errors, parse_network)
    out["allowed_ips"] = [str(n) for n in nets] if nets or allowed else list(_DEFAULT_ALLOWED)
    return out


def _users(raw, what, errors):
    users = []
    for index, item in enumerate(errors.take(want_list(raw, what)) or []):
        path = "%s[%d]" % (what, index)
        if (isinstance(item, int) and not isinstance(item, bool)) or (isinstance(item, str) and item.isdigit()):
            number = errors.take(want_int(item, path, 0, 4294967294))
            if number is not None:
                users.append(number)
        elif isinstance(item, str) and _USER.fullmatch(item):
            users.append(item)
        else:
            errors.append("%s %r is not a user name or uid" % (path, item))
    return users


def _ports(raw, what, errors):
    ports = []
    for index, item in enumerate(errors.take(want_list(raw, what)) or []):
        path = "%s[%d]" % (what, index)
        if not isinstance(item, dict):
            errors.append("%s: must be a dict with proto tcp or udp and port, not %s" % (path, native_type_name(item)))
            continue
        unknown = sorted(map(str, set(item) - _PORT_KNOWN))
        if unknown:
            errors.append("%s: unknown keys %s" % (path, ", ".join(unknown)))
        proto = errors.take(want_str(item.get("proto"), path + ".proto"))
        if proto is not None and proto not in ("tcp", "udp"):
            errors.append("%s.proto %r: needs proto tcp or udp" % (path, proto))
            proto = None
        port = item.get("port")
        if isinstance(port, int) and not isinstance(port, bool):
            port = str(port)
        if not isinstance(port, str):
            errors.append("%s.port: must be a number or a range a-b, not %s" % (path, native_type_name(port)))
            continue
        pieces = port.split("-")
        if len(pieces) > 2 or not all(p.isdigit() and p.isascii() for p in pieces):
            errors.append("%s.port %r: port is a number or a range a-b" % (path, port))
            continue
        lo, hi = int(pieces[0]), int(pieces[-1])
        if not 1 <= lo <= hi <= 65535:
            errors.append("%s.port %r: port out of range" % (path, port))
            continue
        if proto is not None:
            ports.append({"proto": proto, "port": "%d-%d" % (lo, hi) if lo != hi else str(lo)})
    return ports


def _domains(entries, errors):
    """ENTRIES: (where, value) pairs; returns the normalised domains."""
    out = []
    for where, item in entries:
        try:
            out.append(normalize_domain(item))
        except InputError as exc:
            errors.append("%s: %s" % (where, exc))
    return out


def _file_lists(raw, what, texts, errors):
    """The domains and networks of a tunnel's domain_files (read_list: every format it reads); an invalid
    line is an error of its own, with its file and number (a controller file is input like inventory)."""
    domains, networks = [], {4: [], 6: []}
    for index, item in enumerate(errors.take(want_list(raw, what)) or []):
        where = "%s[%d]" % (what, index)
        path = errors.take(want_str(item, where))
        if path is None:
            continue
        text = texts.get(path)
        if not isinstance(text, str):
            errors.append("%s: the file %r was not read" % (where, path))
            continue
        content = read_list(text)
        for number, reason in content.invalid:
            errors.append("%s (%s) line %d: %s" % (where, path, number, reason))
        domains += content.domains
        networks[4] += content.networks4
        networks[6] += content.networks6
    return domains, networks


def _duration(value, what, lo, hi, errors):
    """Seconds from an int or a string like 90, 90s, 30m, 6h, 1d."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            errors.append("%s %r: a number of seconds or a duration like 30m, 6h, 1d" % (what, value))
            return None
        value = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return errors.take(want_int(value, what, lo, hi))


def _sources(raw, what, tunnel, errors):
    """A tunnel's domain_sources: URLs (http, https) and files on the host, each with its refresh interval and
    limits (_lists.SOURCE_DEFAULTS), checked here so the host program takes them as they are."""
    out = []
    for index, given in enumerate(errors.take(want_list(raw, what)) or []):
        where = "%s[%d]" % (what, index)
        item = {"path" if given.startswith("/") else "url": given} if isinstance(given, str) else given
        if not isinstance(item, dict):
            errors.append(
                "%s: a URL, an absolute path or a dict with url or path, not %s" % (where, native_type_name(item))
            )
            continue
        unknown = sorted(map(str, set(item) - _SOURCE_KNOWN))
        if unknown:
            errors.append("%s: unknown keys %s" % (where, ", ".join(unknown)))
        if ("url" in item) == ("path" in item):
            errors.append("%s: one of url or path" % where)
            continue
        source = {}
        if "url" in item:
            try:
                scheme = check_url(item["url"])[0]
            except ValueError as exc:
                errors.append("%s.url: %s" % (where, exc))
                continue
            source["url"] = item["url"]
        else:
            path = item["path"]
            if (
                not isinstance(path, str)
                or not path.startswith("/")
                or posixpath.normpath(path) != path
                or any(ch.isspace() or ord(ch) < 32 for ch in path)
            ):
                errors.append("%s.path %r: an absolute, normal path on the host without whitespace" % (where, path))
                continue
            scheme = "file"
            source["path"] = path
        source["id"] = _lists.source_id(tunnel or "", source.get("url") or source.get("path"))
        defaults = _lists.SOURCE_DEFAULTS
        source["interval"] = _duration(
            item.get("interval", defaults["interval"]), where + ".interval", _lists.MIN_INTERVAL, 366 * 86400, errors
        )
        source["timeout"] = _duration(item.get("timeout", defaults["timeout"]), where + ".timeout", 1, 600, errors)
        source["max_bytes"] = errors.take(
            want_int(item.get("max_bytes", defaults["max_bytes"]), where + ".max_bytes", 1, 1 << 30)
        )
        source["max_invalid"] = errors.take(
            want_int(item.get("max_invalid", defaults["max_invalid"]), where + ".max_invalid", 0, 10000000)
        )
        for key in ("ca", "sha256"):
            if item.get(key) is not None and scheme != "https":
                errors.append("%s.%s: only for an https URL" % (where, key))
        ca = item.get("ca")
        if ca is not None:
            if not isinstance(ca, str) or not _PEM_CERT.search(ca):
                errors.append("%s.ca: the CA's certificate(s) in PEM (-----BEGIN CERTIFICATE-----...)" % where)
            else:
                source["ca"] = ca
        if item.get("sha256") is not None:
            try:
                source["sha256"] = normalize_pin(item["sha256"])
            except ValueError as exc:
                errors.append("%s.sha256: %s" % (where, exc))
        out.append(source)
    ids = [s["id"] for s in out]
    for sid in sorted({i for i in ids if ids.count(i) > 1}):
        errors.append(
            "%s: the same source twice (%s)" % (what, next(s.get("url") or s["path"] for s in out if s["id"] == sid))
        )
    return out


def _health_settings(raw, where, plan, dns, errors):
    """A tunnel's health check as an exit (_health.settings): the probe targets given, or the tunnel's first DNS
    server of each family it carries."""
    families = [f for f in (4, 6) if plan["has_v%d" % f]]
    out, found = _health.settings(raw, where, dns[4][:1] + dns[6][:1], families)
    errors.extend(found)
    return out


def _tunnel(index, raw, settings, extra, texts, errors):
    where = "%s[%d]" % (TUNNELS, index)
    if not isinstance(raw, dict):
        errors.append("%s: must be a dict, not %s" % (where, native_type_name(raw)))
        return None
    unknown = sorted(map(str, set(raw) - _KNOWN))
    if unknown:
        errors.append("%s: unknown keys %s" % (where, ", ".join(unknown)))
    name = raw.get("name")
    error = _check_name(name, where + ".name")
    errors.add(error)
    name = None if error else name
    plan = {"name": name, "index": index}

    addresses = _addresses(raw.get("address"), where + ".address", errors, parse_interface)
    if not addresses and not any(e.startswith(where + ".address") for e in errors):
        errors.append("%s.address: is required (the tunnel's own address, e.g. 10.99.0.10/32)" % where)
    plan["address"] = [str(a) for a in addresses]
    plan["has_v4"] = any(a.version == 4 for a in addresses)
    plan["has_v6"] = any(a.version == 6 for a in addresses)

    keys_needed = settings["state"] != "absent"
    plan["peer"] = _peer(raw.get("peer"), where + ".peer", keys_needed, errors)
    plan["private_key"] = False
    if _given(raw.get("private_key")) and keys_needed:
        plan["private_key"] = _key(raw["private_key"], where + ".private_key", errors) is not None

    mtu = 1420 if raw.get("mtu") is None else raw["mtu"]
    plan["mtu"] = errors.take(want_int(mtu, where + ".mtu", 1280 if plan["has_v6"] else 576, 9000))

    dns = {4: [], 6: []}
    for addr in _addresses(raw.get("dns"), where + ".dns", errors, parse_address):
        dns[addr.version].append(str(addr))
    plan["dns"] = dns[4] + dns[6]

    file_domains, file_networks = _file_lists(raw.get("domain_files"), where + ".domain_files", texts, errors)
    nets = {4: [], 6: []}
    for net in _addresses(raw.get("networks"), where + ".networks", errors, parse_network):
        nets[net.version].append(str(net))
    for version in (4, 6):  # already canonical (read_list)
        nets[version] += file_networks[version]
    # the tunnel's DNS servers are reached through the tunnel: they are static members too
    nets[4] += ["%s/32" % a for a in dns[4]]
    nets[6] += ["%s/128" % a for a in dns[6]]
    for version, have in ((4, plan["has_v4"]), (6, plan["has_v6"])):
        if nets[version] and not have:
            errors.append("%s: IPv%d networks or dns need an IPv%d tunnel address" % (where, version, version))
    plan["networks4"] = sorted(set(nets[4]))
    plan["networks6"] = sorted(set(nets[6]))

    plan["users"] = _users(raw.get("users"), where + ".users", errors)
    plan["ports"] = _ports(raw.get("ports"), where + ".ports", errors)

    entries = [
        ("%s.domains[%d]" % (where, i), d)
        for i, d in enumerate(errors.take(want_list(raw.get("domains"), where + ".domains")) or [])
    ]
    entries += extra.get(name, []) if name is not None else []
    plan["domains"] = sorted(set(_domains(entries, errors)) | set(file_domains))
    if plan["domains"] and not plan["dns"]:
        errors.append("%s: domains need dns: the resolver reached through the tunnel" % where)
    plan["sources"] = _sources(raw.get("domain_sources"), where + ".domain_sources", name, errors)
    preresolve = False if raw.get("preresolve") is None else raw["preresolve"]
    plan["preresolve"] = errors.take(want_bool(preresolve, where + ".preresolve"))
    if plan["sources"] and not plan["dns"]:
        errors.append("%s: domain_sources need dns: the resolver reached through the tunnel" % where)

    plan["fallback"] = []
    for i, item in enumerate(errors.take(want_list(raw.get("fallback"), where + ".fallback")) or []):
        error = _check_name(item, "%s.fallback[%d]" % (where, i))
        errors.add(error)
        if not error:
            plan["fallback"].append(item)
    plan["health"] = _health_settings(raw.get("health"), where + ".health", plan, dns, errors)

    def number(key, default, lo, hi):
        """An optional number: null or absent takes the default (none when its base setting is invalid)."""
        value = raw.get(key)
        if value is None:
            if default is None:
                return None
            value = default
        return errors.take(want_int(value, "%s.%s" % (where, key), lo, hi))

    defaults = _names.tunnel_numbers(index, settings["table_base"], settings["priority_base"], settings["back_port"])
    plan["fwmark"] = number("fwmark", defaults["fwmark"], 1, 0xFFFFFFFF)
    plan["table"] = number("table", defaults["table"], 1, 0xFFFFFFFF)
    if plan["table"] is not None:
        error = check_tables(plan["table"], 1, where + ".table")
        errors.add(error)
        plan["table"] = None if error else plan["table"]
    plan["priority"] = number("priority", defaults["priority"], 1, 32765)
    plan["back_port"] = number("back_port", defaults["back_port"], 1, 65535)
    # the sets dnsmasq fills, two generations each (see _host_client), and the static ones
    plan["sets4"] = _names.dns_sets(name, 4)
    plan["sets6"] = _names.dns_sets(name, 6)
    plan["net4"] = _names.net_set(name, 4)
    plan["net6"] = _names.net_set(name, 6)
    plan["src4"] = _names.src_set(name, 4)
    plan["src6"] = _names.src_set(name, 6)
    return plan


def _extra_domains(domain_lists, errors):
    """Variable name -> {tunnel: [domains]} into tunnel -> [(where, domain)], in the variables' name order."""
    extra = {}
    lists = errors.take(want_dict(domain_lists, "splitroute_client_domains__*")) or {}
    for var in sorted(lists, key=str):
        for tunnel, domains in (errors.take(want_dict(lists[var], str(var))) or {}).items():
            what = "%s[%r]" % (var, tunnel)
            if not isinstance(tunnel, str):
                errors.append("%s: a tunnel name must be a string, not %s" % (what, native_type_name(tunnel)))
                continue
            entries = extra.setdefault(tunnel, [])
            for index, domain in enumerate(errors.take(want_list(domains, what)) or []):
                entries.append(("%s[%d]" % (what, index), domain))
    return extra


def client_plan(tunnels, settings=None, domain_lists=None, domain_files=None):
    tunnels, settings, domain_lists, domain_files = _native([tunnels, settings, domain_lists, domain_files])
    errors = _Errors()
    settings = _settings(settings, errors)
    extra = _extra_domains(domain_lists, errors)
    texts = errors.take(want_dict(domain_files, "domain_files")) or {}
    plans = []
    given = errors.take(want_list(tunnels, TUNNELS))
    for index, raw in enumerate(given or []):
        plan = _tunnel(index, raw, settings, extra, texts, errors)
        if plan is not None:
            plans.append(plan)
    # (a tunnel whose name is refused already has its message)
    unknown = sorted(set(extra) - {p["name"] for p in plans})
    if unknown and given is not None and len(plans) == len(given) and None not in {p["name"] for p in plans}:
        errors.append("domains are given for tunnels that do not exist: %s" % ", ".join(unknown))
    for key in ("name", "fwmark", "table", "priority", "back_port"):
        seen = {}
        for plan in plans:
            if plan[key] is None:
                continue
            if plan[key] in seen:
                errors.append("tunnels %s and %s share %s %s" % (seen[plan[key]], plan["name"], key, plan[key]))
            seen[plan[key]] = plan["name"]
    names = {p["name"] for p in plans}
    mask = settings["fwmark_mask"]
    for plan in plans:
        where = "%s[%d]" % (TUNNELS, plan["index"])
        if mask is not None and plan["fwmark"] is not None and (plan["fwmark"] & ~mask or not plan["fwmark"] & mask):
            errors.append(
                "%s.fwmark: %#x is not a mark in the role's bits (splitroute_client_fwmark_mask %#x): it must be "
                "nonzero there and have no bit outside them" % (where, plan["fwmark"], mask)
            )
        for pattern in settings["forward"]["interfaces"]:
            if plan["name"] is not None and (plan["name"] == pattern or (
                    pattern.endswith("*") and plan["name"].startswith(pattern[:-1]))):  # fmt: skip
                errors.append(
                    "splitroute_client_forward.interfaces: %s takes tunnel %s's own interface (what comes in by a "
                    "tunnel is its answers)" % (pattern, plan["name"])
                )
        fallback = plan["fallback"]
        for name in sorted({n for n in fallback if fallback.count(n) > 1}):
            errors.append("%s.fallback: %s is named twice" % (where, name))
        for name in fallback:
            if name == plan["name"]:
                errors.append("%s.fallback: %s is the tunnel itself (its own exit comes first anyway)" % (where, name))
            elif name not in names:
                errors.append("%s.fallback: no tunnel is named %s" % (where, name))
        exits = [p for p in plans if p["name"] in fallback and p["name"] != plan["name"]]
        for exit_ in [plan] + exits if fallback else []:
            if not exit_["health"]["targets"]:
                errors.append(
                    "tunnel %s: health.targets is needed (it is an exit of %s and has no dns to probe)"
                    % (exit_["name"], plan["name"])
                )
            if plan["dns"] and not exit_["dns"] and exit_ is not plan:
                errors.append(
                    "%s.fallback: %s has no dns: the names of %s would have no resolver through it"
                    % (where, exit_["name"], plan["name"])
                )
    if None not in names:
        errors.extend(_forward.check_tunnels(settings["forward"], plans))
    owner = {}
    for plan in plans:
        for domain in plan["domains"]:
            if domain in owner:
                errors.append("domain %s is listed for tunnels %s and %s" % (domain, owner[domain], plan["name"]))
            owner[domain] = plan["name"]
    for plan in plans:
        host = (plan.get("peer") or {}).get("endpoint_host")
        labels = host.split(".") if host and parse_address(host)[0] is None else []
        for domain in (".".join(labels[i:]) for i in range(len(labels))):
            if domain in owner:
                errors.append(
                    "%s[%d].peer.endpoint: %s is under %s, listed for tunnel %s: the endpoint's name would be looked "
                    "up through a tunnel (when the tunnel is down, never)" % (TUNNELS, plan["index"], host, domain,
                                                                              owner[domain])
                )  # fmt: skip
                break
    if errors:
        raise AnsibleFilterError("invalid split-tunnel configuration:\n  - " + "\n  - ".join(errors))
    return plans


def client_settings(settings):
    """The role-wide settings, validated and typed (numbers as int, booleans as bool, upstream_dns normalised)."""
    errors = _Errors()
    out = _settings(_native(settings), errors)
    if errors:
        raise AnsibleFilterError("invalid split-tunnel configuration:\n  - " + "\n  - ".join(errors))
    return out


def client_secrets(tunnels, keys=("private_key", "preshared_key")):
    """Tunnel name -> {private_key, preshared_key} (each None when not given), for no_log tasks only.

    Checks what becomes a file before anything is written (keys.yml runs alone, before client_plan): the names
    and the KEYS asked for (keys.yml reads no peer: its values may refer to facts the first play has not set
    yet). Messages never hold a key.
    """
    errors = _Errors()
    out = {}
    # (not _native(tunnels): that would read every value, the peers' included)
    tunnels = tunnels if isinstance(tunnels, (list, tuple)) else _native(tunnels)
    for index, raw in enumerate(errors.take(want_list(tunnels, TUNNELS)) or []):
        where = "%s[%d]" % (TUNNELS, index)
        if not isinstance(raw, dict):
            errors.append("%s: must be a dict, not %s" % (where, native_type_name(raw)))
            continue
        name = _native(raw.get("name"))
        error = _check_name(name, where + ".name")
        if error:
            errors.append(error)
            continue
        if name in out:
            errors.append("%s.name: %s is used twice" % (where, name))
            continue
        out[name] = {"private_key": None, "preshared_key": None}
        if "private_key" in keys and _given(raw.get("private_key")):
            out[name]["private_key"] = _key(_native(raw["private_key"]), where + ".private_key", errors)
        peer = raw.get("peer") if "preshared_key" in keys else None
        if isinstance(peer, dict) and _given(peer.get("preshared_key")):
            out[name]["preshared_key"] = _key(_native(peer["preshared_key"]), where + ".peer.preshared_key", errors)
    if errors:
        raise AnsibleFilterError("invalid split-tunnel configuration:\n  - " + "\n  - ".join(errors))
    return out


def client_dnsmasq_text(groups, layout):
    """The text of a resolver's nftset/server file for GROUPS (the plan's front_groups, or one tunnel's
    back_groups) in LAYOUT (front or back), as the dnsmasq_nftset module writes it (the same code); the role
    writes it in its file tree, where dnsmasq --test checks it first."""
    try:
        return compile_config(_native(groups), layout).content
    except InputError as exc:
        raise AnsibleFilterError("invalid resolver groups: %s" % exc) from exc


def client_key_args(secrets):
    """The wireguard_keys module's `keys` from client_secrets' output: [{name, private_key}] in tunnel order,
    private_key "" where none is given (the module generates one on the host)."""
    return [{"name": name, "private_key": (keys or {}).get("private_key") or ""} for name, keys in secrets.items()]


def resolv_nameservers(text):
    """The nameserver addresses of a resolv.conf TEXT, in order, as the collection's address parser reads
    them (what it does not read as one address, a scope id or other text, is left out)."""
    out = []
    for line in text.splitlines() if isinstance(text, str) else []:
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        addr, error = parse_address(fields[1], what="nameserver")
        if not error:
            out.append(str(addr))
    return out


def client_upstreams(texts, given=None):
    """The resolvers for names that are not listed: GIVEN (splitroute_client_upstream_dns, already checked) when
    there are any, else the nameservers of TEXTS (resolv.conf files read from the host, in order), each once.
    Only what the collection's address parser reads as one address goes (no scope id, no other text): the
    loopback (the role's own front resolver) and anything else are left out."""
    if given:
        return list(given)
    out = []
    for text in texts or []:
        for addr in resolv_nameservers(text):
            if not ipaddress.ip_address(addr).is_loopback and addr not in out:
                out.append(addr)
    return out


def client_domain_files(tunnels):
    """The paths of the tunnels' domain files, for the role to read; what is not a path is left to client_plan."""
    paths = []
    for raw in tunnels if isinstance(tunnels, list) else []:
        files = raw.get("domain_files") if isinstance(raw, dict) else None
        for path in files if isinstance(files, list) else []:
            if isinstance(path, str) and path and path not in paths:
                paths.append(path)
    return paths


def client_trees(tunnels, with_dns):
    """The client's three file trees: the tunnels' WireGuard configurations (0600), its own files
    under /etc/splitroute (checked by nft and dnsmasq before any is written) and its units and drop-ins."""
    entry = _names.tree_file
    etc, systemd, wireguard = _names.ETC, _names.SYSTEMD_ETC, _names.WIREGUARD
    return {
        "wireguard": {
            "root": wireguard,
            "mode": "0600",
            "directory_mode": "0700",
            "validate": {},
            "files": [entry(wireguard, _names.wg_files(t["name"])[0], "wg.conf.j2", tunnel=t["name"]) for t in tunnels],
        },
        "etc": {
            "root": etc,
            "mode": "0644",
            "directory_mode": "0755",
            "validate": {"*.nft": "nft -c -f %s", "dns/*.conf": "dnsmasq --test --conf-file=%s"},
            "files": [
                entry(etc, _names.CLIENT_PLAN, "client.json.j2"),
                entry(etc, _names.CLIENT_NFT_FILE, "client.nft.j2"),
                # (its base and servers-file are written by `splitroute apply`: the listed domains and the sources')
                entry(etc, _names.CLIENT_FRONT_CONF, "dnsmasq-front.conf.j2"),
            ]
            + [entry(etc, _names.back_files(name)[0], "dnsmasq-back.conf.j2", tunnel=name) for name in with_dns]
            + [entry(etc, _names.back_files(name)[1], "dnsmasq-back-nftset.conf.j2", tunnel=name) for name in with_dns],
        },
        "systemd": {
            "root": systemd,
            "mode": "0644",
            "directory_mode": "0755",
            "validate": {},
            "files": [entry(systemd, _names.SYSTEMD + "/" + u, u + ".j2") for u in _names.CLIENT_UNIT_FILES]
            + [
                entry(systemd, _names.wg_dropin(t["name"]), "wg-quick-dropin.conf.j2", tunnel=t["name"])
                for t in tunnels
            ]
            + [
                entry(systemd, _names.NETWORKD_DROPIN, "networkd.conf.j2", unit="systemd-networkd.service"),
                entry(systemd, _names.RESOLVED_DROPIN, "resolved.conf.j2", unit="systemd-resolved.service"),
            ],
        },
    }


def client_dns(tunnels, settings, resolved):
    """How the host's local DNS is wired (the plan's `dns`). RESOLVED: systemd-resolved runs on the host.

    Either way resolved, where it is installed, sends every name to the front resolver (its drop-in: DNS= the
    front, Domains= ~. and every listed domain as a routing domain, so that a connection's own ~. never
    equals a listed domain's match and takes it). Where resolved runs, its stub stays on 127.0.0.53 (the
    resolv.conf link NetworkManager and networkd expect is left alone) and the front reads the uplink resolvers
    resolved learned, live, from resolved's own resolv.conf (unless splitroute_client_upstream_dns names
    them); resolved's queries go where it sends them (the redirect leaves its user alone: a connection's own
    routing domains keep their servers). Where it does not run, the front answers on 127.0.0.53 too and
    resolved's stub, should it start later, stays off."""
    domains = []
    for t in tunnels:
        for domain in t["domains"]:
            if domain not in domains:
                domains.append(domain)
    front = list(_names.CLIENT_FRONT_ADDRESSES)
    return {
        "resolved": bool(resolved),
        "front_addresses": front,
        "listen": front + ([] if resolved else [_names.RESOLVED_STUB]),
        "resolv_file": _names.RESOLVED_UPLINK_RESOLV if resolved and not settings["upstream_dns"] else None,
        "stub": _names.RESOLVED_STUB,
        "resolved_user": _names.RESOLVED_USER if resolved else None,
        "resolved_dns": front[0],
        "resolved_domains": ["~."] + ["~" + d for d in domains],
        # how a changed drop-in is applied where resolved runs (252 has no reload: _releases)
        "resolved_apply": _releases.RESOLVED_APPLY,
    }


def lists_tick(tunnels):
    """Seconds between two runs of `splitroute refresh`: the shortest interval of any source, 5 s to 5 min
    (an hour when no tunnel has a source)."""
    intervals = [s["interval"] for t in tunnels for s in t.get("sources", [])]
    return max(_lists.MIN_INTERVAL, min(300, *intervals)) if intervals else 3600


def client_failover(tunnels, mask=_names.FWMARK_MASK):
    """The plan's `failover` (_host_health): the groups (a tunnel with a fallback: its exits in order, its
    table, mark (in the bits of MASK) and families, its back resolver and the servers-file `splitroute health`
    writes for it), the exits they name (interface, probe mark, families, DNS servers, probe targets and check
    settings) and the units the program starts after."""
    by_name = {t["name"]: t for t in tunnels}
    groups, exits = [], {}
    for t in tunnels:
        if not t.get("fallback"):
            continue
        order = [t["name"]] + [n for n in t["fallback"] if n != t["name"]]
        families = [f for f in (4, 6) if t["has_v%d" % f]]
        groups.append(
            {
                "tunnel": t["name"],
                "order": order,
                "table": t["table"],
                "fwmark": t["fwmark"],
                "fwmask": mask,
                "families": families,
                "sticky": t["health"]["sticky"],
                "dns": t["dns"],
                "servers_file": _names.back_servers_file(t["name"]) if t["dns"] else None,
                "back_unit": _names.back_unit(t["name"]),
            }
        )
        for name in order:
            e = by_name[name]
            exits[name] = {
                "interface": name,
                "mark": e["fwmark"],
                "table": e["table"],
                "families": [f for f in (4, 6) if e["has_v%d" % f]],
                "dns": e["dns"],
                "targets": e["health"]["targets"],
                "check": {k: v for k, v in e["health"].items() if k != "targets"},
            }
    # splitroute health starts after what it checks and signals
    after = [_names.back_unit(t["name"]) for t in tunnels if t["dns"]] + [_names.wg_unit(t["name"]) for t in tunnels]
    return {"state": _names.CLIENT_HEALTH_STATE, "groups": groups, "exits": exits, "after": after}


def client_host_plan(tunnels, settings, resolved=False):
    """The plan the role renders to /etc/splitroute/client.json: CLIENT_PLAN's tunnels and CLIENT_SETTINGS'
    settings (both already checked), with every list the tasks, the templates and the host program take from it
    (rules, routes, resolver groups, units, the sets' rotation, the local DNS: client_dns with RESOLVED, whether
    systemd-resolved runs on the host). No key material: the tunnels carry only flags."""
    tunnels, settings = _native([tunnels, settings])
    table = _names.NFT_TABLE
    rules, routes, boot_routes, back_groups = [], [], [], {}
    failover = client_failover(tunnels, settings["fwmark_mask"])
    groups = {g["tunnel"] for g in failover["groups"]}
    for t in tunnels:
        rules.append({"priority": t["priority"], "fwmark": str(t["fwmark"]), "fwmask": str(settings["fwmark_mask"]),
                      "table": str(t["table"])})  # fmt: skip
        for family, have in (("4", t["has_v4"]), ("6", t["has_v6"])):
            if have and t["name"] not in groups:  # a group's default route is splitroute health's
                routes.append({"table": str(t["table"]), "dest": "default", "dev": t["name"], "family": family,
                               "metric": _names.EXIT_METRIC})  # fmt: skip
        if t["name"] in failover["exits"]:
            routes.extend(dict(r, table=str(r["table"])) for r in _names.probe_routes(failover["exits"][t["name"]]))
        blackhole = {"table": str(t["table"]), "dest": "default", "type": "blackhole", "metric": 100}
        routes.append(blackhole)
        boot_routes.append(dict(blackhole))
        if t["dns"]:
            # only the sets of the families the tunnel carries: a tunnel without IPv6 has its AAAA answers
            # filtered (dnsmasq-back.conf.j2), and dnsmasq fills the sets before it filters
            sets = [{"version": 4, "table": table, "name": n} for n in t["sets4"] if t["has_v4"]]
            sets += [{"version": 6, "table": table, "name": n} for n in t["sets6"] if t["has_v6"]]
            # a group's back resolver reads its servers from the servers-file splitroute health writes
            servers = [] if t["name"] in groups else t["dns"]
            back_groups[t["name"]] = [{"name": t["name"], "domains": [], "sets": sets, "servers": servers}]
    with_dns = [t["name"] for t in tunnels if t["dns"]]
    base = settings["priority_base"]
    front_groups = [
        {"name": t["name"], "domains": t["domains"], "back_server": "127.0.0.1#%d" % t["back_port"]}
        for t in tunnels
        if t["domains"] or t.get("sources")
    ]
    # the static part of the servers-file compiles here, before anything changes (the host compiles the rest)
    client_dnsmasq_text([g for g in front_groups if g["domains"]], "front")
    return {
        "role": "client",
        "version": PLAN_VERSION,
        "settings": settings,
        "tunnels": tunnels,
        "nft": {"table": table, "file": _names.CLIENT_NFT_FILE},
        "paths": {
            "etc": _names.ETC,
            "plan": _names.CLIENT_PLAN,
            "dns_dir": _names.CLIENT_DNS_DIR,
            "front_conf": _names.CLIENT_FRONT_CONF,
            "front_servers": _names.CLIENT_FRONT_SERVERS,
            "front_base": _names.CLIENT_FRONT_BASE,
            "systemd": _names.SYSTEMD,
            "wireguard": _names.WIREGUARD,
            "networkd_dropin": _names.NETWORKD_DROPIN,
            "resolved_dropin": _names.RESOLVED_DROPIN,
            "resolv_backup": _names.CLIENT_RESOLV_BACKUP,
            "rotate_state": _names.CLIENT_ROTATE_STATE,
            "program": PROGRAM,
            "legacy_routing_script": _names.CLIENT_LEGACY_ROUTING_SCRIPT,
        },
        "rotation": rotation(settings["max_cache_ttl"], settings["max_ttl"]),
        "rules": rules,
        "routes": routes,
        "boot_routes": boot_routes,
        "scope": {
            "priorities": "%d-%d" % (base, base + _names.SCOPE_PRIORITIES - 1),
            # a failover group's table is left out: its default route is splitroute health's (only the
            # blackhole and the probe routes are the role's, added when missing)
            "tables": [str(t["table"]) for t in tunnels if t["name"] not in groups],
            # absent: every table the role may have used
            "all_tables": sorted(
                {str(settings["table_base"] + i) for i in range(_names.SCOPE_TABLES)}
                | {str(t["table"]) for t in tunnels},
                key=int,
            ),
        },
        "dns": client_dns(tunnels, settings, resolved),
        # DoT, DoH, canaries, HTTPS records, QUIC (_bypass): DoT may still reach the configured DNS servers
        "bypass": _bypass.plan(
            settings.get("dns_bypass") or _bypass.settings(None, "")[0],
            list(settings["upstream_dns"]) + [str(a) for t in tunnels for a in t["dns"]],
        ),
        # the front resolver's groups with the domains of inventory and controller files; `splitroute apply`
        # adds the sources' domains and writes the servers-file
        "front_groups": front_groups,
        "lists": {
            "dir": _names.CLIENT_LISTS_DIR,
            # how often the timer runs `splitroute refresh` (each source is fetched when its interval passed)
            "tick": lists_tick(tunnels),
            # `splitroute preresolve`: queries a second, and the units it runs after
            "preresolve_rate": settings["preresolve_rate"],
            "preresolve_after": [_names.FRONT_UNIT] + [_names.wg_unit(t["name"]) for t in tunnels],
        },
        "back_groups": back_groups,
        "failover": failover,
        # the routes wg-quick adds when a tunnel comes up (PostUp): its default route, but a failover group's
        # (splitroute health's, as are the probe routes it puts back when an interface comes back)
        "up_routes": {
            t["name"]: [r for r in routes if r.get("dev") == t["name"] and r["dest"] == "default"] for t in tunnels
        },
        # the failover groups' back resolvers read these (servers-file=; splitroute health writes them)
        "back_servers": {g["tunnel"]: g["servers_file"] for g in failover["groups"] if g["servers_file"]},
        # the marks of the exits splitroute health probes: a probe keeps its mark (client.nft.j2)
        "probe_marks": ["%#x" % m for m in sorted({e["mark"] for e in failover["exits"].values()})],
        # the role's bits of the packet and conntrack marks, and per tunnel the statements that set its mark
        # in them (the other bits are kept: other software's marks)
        "marks": {
            "mask": "%#x" % settings["fwmark_mask"],
            "set": {t["name"]: _names.mark_statement(t["fwmark"], settings["fwmark_mask"]) for t in tunnels},
            # an established connection's packet gets its connection's mark again
            "restore": {
                t["name"]: _names.mark_statement(t["fwmark"], settings["fwmark_mask"], conntrack=False) for t in tunnels
            },
        },
        # forwarded traffic (_forward): the LAN behind the host, its containers and VMs
        "forward": _forward.plan(
            settings.get("forward") or _forward.settings(None, "")[0], tunnels, settings["fwmark_mask"]
        ),
        "units": {
            "files": list(_names.CLIENT_UNIT_FILES),
            # enabled and started in this order (boot order)
            "start": [_names.CLIENT_UNIT]
            + [_names.back_unit(n) for n in with_dns]
            + [_names.FRONT_UNIT]
            + [_names.wg_unit(t["name"]) for t in tunnels]
            + [_names.PRERESOLVE_UNIT, _names.ROTATE_TIMER, _names.LISTS_TIMER, _names.HEALTH_UNIT],
            # restarted (reloaded) after a run changed one of these files (unit_states)
            "triggers": _names.client_unit_triggers([t["name"] for t in tunnels], with_dns),
            # stopped and disabled on removal, in the reverse of the boot order
            "stop": list(_names.CLIENT_STOP_FIRST) + [_names.back_unit(n) for n in with_dns] + [_names.CLIENT_UNIT],
        },
        # the files the role writes, one file_tree task per tree: the role's templates, rendered
        # with `item` the tunnel named by `tunnel`; a file with `unit` only where that unit is installed
        "trees": client_trees(tunnels, with_dns),
        "files": {
            # the client's own files (/etc/splitroute itself goes when nothing else is left in it), units
            # and resolved's and networkd's drop-ins (resolved restarts where it runs; a running networkd
            # keeps the drop-in's setting until it restarts: the role's rules are gone by then)
            "remove": list(_names.CLIENT_FILES)
            + ["%s/%s" % (_names.SYSTEMD, u) for u in _names.CLIENT_UNIT_FILES]
            + [_names.NETWORKD_DROPIN, _names.RESOLVED_DROPIN],
        },
    }


def _plan_or_none(value):
    """The previous plan from the host (its slurped JSON text, a dict or nothing)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) and value.get("role") == "client" else None


def client_prune(old, new, dropins=None, backs=None, sets=None, inventory=None):
    """What to remove from the host (see _host_client.prune): OLD, the host's previous plan (its JSON text, or
    nothing); NEW, the plan being applied (None: remove every tunnel); DROPINS, BACKS: the paths of the role's
    wg-quick drop-ins (DIR/splitroute.conf, or DIR) and of the back resolvers' nftset files found on the host;
    SETS: the set names in the client's table on the host; INVENTORY: tunnels of the inventory that go too (the
    role's state absent)."""
    old, new, dropins, backs, sets = _native([_plan_or_none(old), new, dropins or [], backs or [], sets or []])
    if inventory:
        old = {"tunnels": list((old or {}).get("tunnels", [])) + _native(list(inventory))}
    # a drop-in directory, or the role's file in it
    dropins = [p[: -len("/splitroute.conf")] if p.endswith("/splitroute.conf") else p for p in dropins]
    found = {
        "dropins": [
            p.rsplit("/", 1)[-1][len("wg-quick@") : -len(".service.d")]
            for p in dropins
            if p.rsplit("/", 1)[-1].startswith("wg-quick@") and p.endswith(".service.d")
        ],
        "backs": [
            p.rsplit("/", 1)[-1][len("back-") : -len("-nftset.conf")]
            for p in backs
            if p.rsplit("/", 1)[-1].startswith("back-") and p.endswith("-nftset.conf")
        ],
        "sets": sets,
    }
    return prune(old, new, found)


def client_nft_sets(text, table=_names.NFT_TABLE):
    """The set names in `nft -j list table inet TABLE` output (empty when there is none)."""
    try:
        data = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return []
    items = data.get("nftables", []) if isinstance(data, dict) else []
    return sorted(
        str(i["set"]["name"])
        for i in items
        if isinstance(i, dict) and isinstance(i.get("set"), dict) and i["set"].get("table") == table
    )


class FilterModule:
    def filters(self):
        return {
            "client_plan": client_plan,
            "client_settings": client_settings,
            "client_secrets": client_secrets,
            "client_key_args": client_key_args,
            "client_dnsmasq_text": client_dnsmasq_text,
            "client_domain_files": client_domain_files,
            "client_upstreams": client_upstreams,
            "resolv_nameservers": resolv_nameservers,
            "client_host_plan": client_host_plan,
            "client_prune": client_prune,
            "client_nft_sets": client_nft_sets,
        }
