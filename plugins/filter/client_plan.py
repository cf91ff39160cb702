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
    users, ports, DNS servers, domains) and fails with one message listing every problem, before the role changes
    anything.
  - Returns the tunnels with their numbers filled in (fwmark, routing table, rule priority, back resolver port),
    set names, and domain lists merged from the tunnel, from inventory variables and from files, normalised to
    ASCII and deduplicated.
options:
  _input:
    description: The role's O(splitroute_client_tunnels).
    type: list
    elements: dict
    required: true
  extra_domains:
    description: Tunnel name to list of domains, merged from inventory and domain files.
    type: dict
    default: {}
  settings:
    description:
      - Role-wide settings (set_timeout, max_cache_ttl, max_ttl, table_base, priority_base, back_port, state).
      - With state C(absent) the peers' keys are neither needed nor checked (they come back as null).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan the tunnels
  ansible.builtin.set_fact:
    plan: "{{ tunnels | splitroute.vpn.client_plan({}, {'set_timeout': 3600, 'max_cache_ttl': 300, 'max_ttl': 300,
      'table_base': 100, 'priority_base': 1000, 'back_port': 5301}) }}"
"""

RETURN = r"""
_value:
  description: The tunnels, validated and completed.
  type: list
  elements: dict
"""

import base64
import ipaddress
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.module_utils._dnsmasq import InputError, normalize_domain
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import check_ifname, check_program

_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})\Z")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
_KNOWN = {
    "name", "address", "private_key", "peer", "mtu", "dns", "domains", "domain_files", "networks",
    "users", "ports", "fwmark", "table", "priority", "back_port",
}  # fmt: skip
_PEER_KNOWN = {"public_key", "endpoint", "preshared_key", "allowed_ips", "persistent_keepalive"}


def _key(value, what):
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32 or len(str(value)) != 44:
        raise ValueError("%s is not a WireGuard key (44 characters of base64)" % what)
    return str(value)


def _int(value, what, lo, hi):
    try:
        number = int(str(value), 0)
    except ValueError as exc:
        raise ValueError("%s %r is not a number" % (what, value)) from exc
    if not lo <= number <= hi:
        raise ValueError("%s %r is outside %d-%d" % (what, value, lo, hi))
    return number


def _tunnel(index, raw, extra, settings):
    errors = []

    def check(fn, *args):
        try:
            return fn(*args)
        except ValueError as exc:
            errors.append(str(exc))
            return None

    if not isinstance(raw, dict):
        raise AnsibleFilterError("splitroute_client_tunnels[%d] is not a dict" % index)
    name = raw.get("name")
    label = "tunnel %s" % (name if isinstance(name, str) else "#%d" % index)
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        errors.append("unknown keys %s" % ", ".join(unknown))
    err = check_ifname(name, what="name")
    if err:
        errors.append(err)
    plan = {"name": name, "index": index}

    addresses = []
    for item in raw.get("address") or []:
        try:
            addresses.append(ipaddress.ip_interface(str(item)))
        except ValueError:
            errors.append("address %r is not ADDRESS/PREFIX" % (item,))
    if not addresses:
        errors.append("address is required (the tunnel's own address, e.g. 10.99.0.10/32)")
    plan["address"] = [str(a) for a in addresses]
    plan["has_v4"] = any(a.version == 4 for a in addresses)
    plan["has_v6"] = any(a.version == 6 for a in addresses)

    peer = raw.get("peer") or {}
    if not isinstance(peer, dict):
        errors.append("peer must be a dict")
        peer = {}
    unknown = sorted(set(peer) - _PEER_KNOWN)
    if unknown:
        errors.append("unknown peer keys %s" % ", ".join(unknown))
    # Removing a tunnel needs no key: the other side's may be gone already (revert.yml).
    keys_needed = settings.get("state", "present") != "absent"
    plan["peer"] = {
        "public_key": check(_key, peer.get("public_key"), "peer.public_key") if keys_needed else None,
        "preshared_key": check(_key, peer["preshared_key"], "peer.preshared_key")
        if peer.get("preshared_key") and keys_needed
        else None,
        "persistent_keepalive": (
            check(_int, peer["persistent_keepalive"], "peer.persistent_keepalive", 0, 65535)
            if peer.get("persistent_keepalive") is not None
            else None
        ),
    }
    match = _ENDPOINT.match(str(peer.get("endpoint") or ""))
    if not match or not 1 <= int(match.group("port")) <= 65535:
        errors.append("peer.endpoint %r is not HOST:PORT or [IPV6]:PORT" % (peer.get("endpoint"),))
    else:
        host = match.group("v6") or match.group("host")
        if match.group("v6"):
            check(ipaddress.IPv6Address, host)
        plan["peer"]["endpoint"] = str(peer["endpoint"])
        plan["peer"]["endpoint_host"] = host
    allowed = []
    for item in peer.get("allowed_ips") or ["0.0.0.0/0", "::/0"]:
        try:
            allowed.append(str(ipaddress.ip_network(str(item), strict=True)))
        except ValueError:
            errors.append("peer.allowed_ips %r is not a network in CIDR notation" % (item,))
    plan["peer"]["allowed_ips"] = allowed
    plan["private_key"] = check(_key, raw["private_key"], "private_key") if raw.get("private_key") else None

    plan["mtu"] = check(_int, raw.get("mtu", 1420), "mtu", 1280 if plan["has_v6"] else 576, 9000)

    dns = {4: [], 6: []}
    for item in raw.get("dns") or []:
        try:
            addr = ipaddress.ip_address(str(item))
            dns[addr.version].append(str(addr))
        except ValueError:
            errors.append("dns %r is not an IP address" % (item,))
    plan["dns"] = dns[4] + dns[6]

    nets = {4: [], 6: []}
    for item in raw.get("networks") or []:
        try:
            net = ipaddress.ip_network(str(item), strict=True)
            nets[net.version].append(str(net))
        except ValueError as exc:
            errors.append("networks %r is not a network in CIDR notation (%s)" % (item, exc))
    # the tunnel's DNS servers are reached through the tunnel: they are static members too
    nets[4] += ["%s/32" % a for a in dns[4]]
    nets[6] += ["%s/128" % a for a in dns[6]]
    for version, have in ((4, plan["has_v4"]), (6, plan["has_v6"])):
        if nets[version] and not have:
            errors.append("IPv%d networks or dns need an IPv%d tunnel address" % (version, version))
    plan["networks4"] = sorted(set(nets[4]))
    plan["networks6"] = sorted(set(nets[6]))

    users = []
    for item in raw.get("users") or []:
        if isinstance(item, int) or str(item).isdigit():
            users.append(check(_int, item, "users", 0, 4294967294))
        elif _USER.match(str(item)):
            users.append(str(item))
        else:
            errors.append("users %r is not a user name or uid" % (item,))
    plan["users"] = users

    ports = []
    for item in raw.get("ports") or []:
        if not isinstance(item, dict) or str(item.get("proto")) not in ("tcp", "udp"):
            errors.append("ports %r needs proto tcp or udp and port" % (item,))
            continue
        text = str(item.get("port", ""))
        pieces = text.split("-")
        if len(pieces) > 2 or not all(p.isdigit() for p in pieces):
            errors.append("ports %r: port is a number or a range a-b" % (item,))
            continue
        lo, hi = int(pieces[0]), int(pieces[-1])
        if not 1 <= lo <= hi <= 65535:
            errors.append("ports %r: port out of range" % (item,))
            continue
        ports.append({"proto": item["proto"], "port": "%d-%d" % (lo, hi) if lo != hi else str(lo)})
    plan["ports"] = ports

    domains = []
    for item in list(raw.get("domains") or []) + list(extra.get(name) or []):
        try:
            domains.append(normalize_domain(item))
        except InputError as exc:
            errors.append(str(exc))
    plan["domains"] = sorted(set(domains))
    if plan["domains"] and not plan["dns"]:
        errors.append("domains need dns: the resolver reached through the tunnel")

    plan["fwmark"] = check(_int, raw.get("fwmark", index + 1), "fwmark", 1, 0xFFFFFFFF)
    plan["table"] = check(_int, raw.get("table", settings["table_base"] + index), "table", 1, 0xFFFFFFFF)
    if plan["table"] in (253, 254, 255):
        errors.append("table %d is reserved" % plan["table"])
    plan["priority"] = check(_int, raw.get("priority", settings["priority_base"] + 10 * index), "priority", 1, 32765)
    plan["back_port"] = check(_int, raw.get("back_port", settings["back_port"] + index), "back_port", 1, 65535)
    plan["set4"] = "%s_v4" % name
    plan["set6"] = "%s_v6" % name
    plan["net4"] = "%s_net4" % name
    plan["net6"] = "%s_net6" % name
    return plan, ["%s: %s" % (label, e) for e in errors]


def client_plan(tunnels, extra_domains=None, settings=None):
    settings = settings or {}
    extra_domains = extra_domains or {}
    if not isinstance(tunnels, list):
        raise AnsibleFilterError("splitroute_client_tunnels must be a list")
    errors = []
    timeout = int(settings.get("set_timeout", 3600))
    reuse = int(settings.get("max_cache_ttl", 300)) + int(settings.get("max_ttl", 300))
    if timeout <= reuse:
        errors.append(
            "splitroute_client_set_timeout (%d s) must exceed max_cache_ttl + max_ttl (%d s): a set element must "
            "outlive every reuse of the answer that put it there" % (timeout, reuse)
        )
    err = check_program(settings.get("wireguard_userspace"), "splitroute_client_wireguard_userspace")
    if err:
        errors.append(err)
    for item in settings.get("upstream_dns") or []:
        try:
            ipaddress.ip_address(str(item))
        except ValueError:
            errors.append("splitroute_client_upstream_dns %r is not an IP address" % (item,))
    plans = []
    for index, raw in enumerate(tunnels):
        plan, problems = _tunnel(index, raw, extra_domains, settings)
        plans.append(plan)
        errors.extend(problems)
    unknown = sorted(set(extra_domains) - {p["name"] for p in plans})
    if unknown:
        errors.append("domains are given for tunnels that do not exist: %s" % ", ".join(map(str, unknown)))
    for key in ("name", "fwmark", "table", "priority", "back_port"):
        seen = {}
        for plan in plans:
            if plan[key] is None:
                continue
            if plan[key] in seen:
                errors.append("tunnels %s and %s share %s %s" % (seen[plan[key]], plan["name"], key, plan[key]))
            seen[plan[key]] = plan["name"]
    owner = {}
    for plan in plans:
        for domain in plan["domains"]:
            if domain in owner:
                errors.append("domain %s is listed for tunnels %s and %s" % (domain, owner[domain], plan["name"]))
            owner[domain] = plan["name"]
    if errors:
        raise AnsibleFilterError("invalid split-tunnel configuration:\n  - " + "\n  - ".join(errors))
    return plans


class FilterModule:
    def filters(self):
        return {"client_plan": client_plan}
