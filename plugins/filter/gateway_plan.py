# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gateway_plan
short_description: Validate the gateway role's peers, address classes and providers
version_added: 0.1.0
author:
  - splitroute maintainers (@splitroute)
description:
  - Used by the C(splitroute.vpn.gateway) role. Checks the WireGuard address, the address classes (ranges inside the
    peer subnet that do not overlap, each with an exit), the peers (address inside the subnet and in a class, unique
    names, addresses and public keys) and the providers, and fails with one message listing every problem, before the
    role changes anything.
  - Secrets are not copied into the plan, so that it can be printed (C(set_fact) at C(-v)) - the providers' profiles
    and passwords are read from the role's variable by the provider's C(index), and a peer's C(preshared_key) is
    only V(true) or V(false) in the plan. C(gateway_secrets) (in the same file) gives the preshared keys by peer
    name to the C(no_log) tasks that write them. No message includes a key, a profile or a password.
  - Also checks everything that reaches a configuration file - interface names, every address and network (the
    collection's one address parser, which refuses IPv6 scope ids such as C(fd00::1%x), control characters and
    what is not a string), DNS upstreams and split-horizon records, the endpoint given to unmanaged peers - so that
    no value can add a line to one.
  - A wrong type is refused with the variable and its path (for example C(splitroute_gateway_peers[1].name) must be
    a string), never with a traceback; a string where a list is expected is refused, never split into characters;
    numbers may be digit strings (as C(-e) gives them).
  - The routing tables (O(settings.table_base) + one per provider) and the rule priorities the role owns
    (O(settings.priority_base) to +199) must hold none of the kernel's (tables 0, 253-255; rules 0, 32766,
    32767). The veth networks are sized by arithmetic, never listed, and must be /16-/30 (IPv6 /48-/126) with room
    for one /30 (/126) per provider.
  - A peer without C(public_key) is unmanaged (a phone, a laptop) - the role generates its key on the controller and
    writes its client configuration; it may carry C(allowed_ips) for that configuration, and needs O(settings.endpoint).
  - Returns the plan - each peer with its exit, each provider with its routing table, rule priority, veth names and
    addresses, the ranges that leave through it and its resolver (port and upstreams).
  - IPv6 is optional - with C(address6) set, classes may carry C(range6) and peers C(address6) (in a class with the
    same exit as their IPv4 address); each provider gets a /126 of C(veth_network6).
  - The same file provides C(gateway_plan_file) (the plan with C(role), C(version), the names and paths, and the
    rule, route, scope, namespace and unit lists computed once, as the role renders it to
    C(/etc/splitroute/gateway.json) and its tasks and the host program C(splitroute) read it), C(gateway_prune)
    (what a provider removed from inventory left on the host - units, namespace, veth, table, files - from the
    host's previous plan and the files found), C(gateway_secrets) (the
    peers' preshared keys by name, for C(no_log) tasks only),
    C(gateway_genkey) (a new WireGuard private key, base64) and C(gateway_pubkey) (the public
    key of a private key), which the role uses for unmanaged peers on the controller.
options:
  _input:
    description: The role's O(splitroute_gateway_peers).
    type: list
    elements: dict
    required: true
  classes:
    description: The role's O(splitroute_gateway_classes).
    type: list
    elements: dict
    required: true
  providers:
    description: The role's O(splitroute_gateway_providers).
    type: list
    elements: dict
    required: true
  settings:
    description:
      - Role-wide settings - address, table_base, priority_base, veth_network, local_networks, wireguard_userspace,
        interface, uplink, port, mtu, dns_upstreams, dns_records, dns_port_base, endpoint, endpoint_port, keepalive,
        address6, veth_network6, state.
      - With state C(absent) the peers' keys are neither needed nor checked (they come back as null).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan the gateway
  ansible.builtin.set_fact:
    plan: >-
      {{ peers | splitroute.vpn.gateway_plan(classes, providers, {'address': '10.4.0.1/24', 'table_base': 200,
         'priority_base': 2000, 'veth_network': '10.255.255.0/24', 'local_networks': []}) }}
"""

RETURN = r"""
_value:
  description:
    - The plan (subnet, address, interface, table and priority bases, peers, direct ranges, providers), validated and
      numbered. It holds no secret.
  type: dict
"""

import base64
import ipaddress
import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.module_utils import _bypass, _health, _names, _x25519
from ansible_collections.splitroute.vpn.plugins.module_utils._host import PLAN_VERSION
from ansible_collections.splitroute.vpn.plugins.module_utils._host_gateway import host_lists, prune
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    check_ifname,
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

_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}\Z")
_PEER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(r"^(?=.{1,253}\.?\Z)%s(?:\.%s)*\.?\Z" % (_LABEL, _LABEL))
_PEER_KEYS = {"name", "public_key", "address", "address6", "preshared_key", "allowed_ips"}
_PROVIDER_KEYS = {
    "name", "config", "server", "port", "proto", "username", "password", "dns_upstreams", "fallback", "health"
}  # fmt: skip
# a provider's health check (_health): all of it but the WireGuard handshake (its tunnel is checked instead)
_HEALTH_KEYS = (set(_health.CHECK_DEFAULTS) - {"handshake_max_age"}) | {"targets"}
_CLASS_KEYS = {"range", "range6", "exit"}
_RECORD_KEYS = {"name", "address"}

PEERS = "splitroute_gateway_peers"
CLASSES = "splitroute_gateway_classes"
PROVIDERS = "splitroute_gateway_providers"
# The role's variable behind each of the settings (the role passes them under these keys).
_SETTINGS = (
    "address address6 veth_network veth_network6 table_base priority_base local_networks state wireguard_userspace"
    " interface uplink port mtu dns_upstreams dns_records dns_port_base endpoint endpoint_port dns_bypass"
    " input_policy"
)
VARIABLES = dict(
    {key: "splitroute_gateway_" + key for key in _SETTINGS.split()}, keepalive="splitroute_gateway_peer_keepalive"
)

# The role owns priorities priority_base .. +199: exclusions at the base and the local networks just
# above it, the providers' classes from +100 (one priority each).
_PRIORITY_SPAN = 200
_MAX_LOCAL_NETWORKS = 99
_MAX_PROVIDERS = 100
# Each provider takes a /30 (a /126) of the veth network; a shorter prefix than this is a mistake
# (the network is sized, never listed, so any prefix would cost nothing to hold).
_VETH_PREFIX = {4: (16, 30), 6: (48, 126)}


def _key(value):
    try:
        return isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False


def _given(value):
    """None and "" mean "not given" (the role's defaults are empty strings)."""
    return not (value is None or (isinstance(value, str) and value == ""))


def _required(item, key, path, errors):
    """ITEM[KEY], or None with an error when it is missing."""
    value = item.get(key)
    if not _given(value):
        errors.append("%s.%s: is required" % (path, key))
        return None
    return value


def _string(value, what, errors):
    text, error = want_str(value, what)
    if error:
        errors.append(error)
    return text


def _number(value, default, what, errors, lo, hi, rule=None):
    number, error = want_int(default if value is None else value, what, lo, hi)
    if error:
        errors.append("%s (%s)" % (error, rule) if rule else error)
    return number


def _parsed(parse, value, what, errors, **kwargs):
    obj, error = parse(value, what=what, **kwargs)
    if error:
        errors.append(error)
    return obj


def _addresses(raw, what, errors, version=None):
    """A list of IP addresses (each checked, of VERSION when given), as strings."""
    values, error = want_list(raw, what)
    if error:
        errors.append(error)
        return []
    out = []
    for index, value in enumerate(values):
        addr = _parsed(parse_address, value, "%s[%d]" % (what, index), errors, version=version)
        if addr is not None:
            out.append(str(addr))
    return out


def _list(raw, what, errors):
    values, error = want_list(raw, what)
    if error:
        errors.append(error)
        return []
    return values


def _entries(raw, var, kind, known, name_re, name_rule, errors):
    """Yield (index, path, item, name, label) for each dict of RAW (the role's variable VAR), noting what is
    not a dict, unknown keys, a name that breaks NAME_RULE and a name used twice. LABEL is
    "KIND NAME" for a valid name, else the path."""
    seen = set()
    for index, item in enumerate(raw):
        path = "%s[%d]" % (var, index)
        if not isinstance(item, dict):
            errors.append("%s: must be a dict, not %s" % (path, type(item).__name__))
            continue
        unknown = sorted(str(key) for key in set(item) - known)
        if unknown:
            errors.append("%s: unknown keys %s" % (path, ", ".join(unknown)))
        name = _required(item, "name", path, errors)
        label = path
        if name is not None:
            name = _string(name, path + ".name", errors)
        if name is not None and not name_re.match(name):
            errors.append("%s.name %r: %s" % (path, name, name_rule))
            name = None
        if name is not None:
            label = "%s %s" % (kind, name)
            if name in seen:
                errors.append("%s: name used twice" % label)
            seen.add(name)
        yield index, path, item, name, label


def _one_line(value, what, errors):
    """An optional secret on one line; its value is never part of a message."""
    if not _given(value):
        return False
    if not isinstance(value, str):
        errors.append("%s: must be a string, not %s" % (what, type(value).__name__))
        return False
    if "\n" in value or "\r" in value:
        errors.append("%s: must be a string on one line" % what)
    return True


def _fallback(item, path, errors):
    """The provider names of ITEM's fallback, in order (each checked against the providers later)."""
    out = []
    for index, name in enumerate(_list(item.get("fallback"), path + ".fallback", errors)):
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append("%s.fallback[%d]: %r is not a provider name" % (path, index, name))
        else:
            out.append(name)
    return out


def _failover_checks(prov, v6, errors):
    """Each provider's fallback names other providers, once each; the exits of a failover (a provider with a
    fallback and those it names) get their health check (_health.settings; the default target is the
    provider's first DNS upstream, asked through its tunnel)."""
    by_name = {p["name"]: p for p in prov if p["name"]}
    exits = set()
    for p in prov:
        label = "provider %s" % p["name"]
        for name in sorted({n for n in p["fallback"] if p["fallback"].count(n) > 1}):
            errors.append("%s: fallback names %s twice" % (label, name))
        for name in p["fallback"]:
            if name == p["name"]:
                errors.append("%s: fallback names the provider itself (its own exit comes first anyway)" % label)
            elif name not in by_name:
                errors.append("%s: fallback names %s, which is not a provider" % (label, name))
        if p["fallback"]:
            exits.update([p["name"]] + [n for n in p["fallback"] if n in by_name])
    for p in prov:
        raw = p.pop("health_raw")
        if p["name"] not in exits and raw is None:
            p["health"] = None
            continue
        where = "%s[%d].health" % (PROVIDERS, p["index"])
        families = [4, 6] if v6 is not None else [4]
        health, found = _health.settings(raw, where, p["dns_upstreams"][:1], families, keys=_HEALTH_KEYS)
        errors.extend(found)
        health["handshake_max_age"] = 0
        if not health["targets"]:
            errors.append("%s.targets: give at least one address to probe through the provider" % where)
        p["health"] = health


def _providers(raw, dns_upstreams, errors):
    out = []
    names = "must be 1-10 lowercase letters or digits, starting with a letter"
    for index, path, item, name, label in _entries(raw, PROVIDERS, "provider", _PROVIDER_KEYS, _NAME, names, errors):
        server = item.get("server")
        if _given(server):
            server = _parsed(parse_address, server, path + ".server", errors, version=4)
        else:
            errors.append("%s.server: is required (the provider's IPv4 address)" % path)
            server = None
        port = _number(item.get("port"), 1194, path + ".port", errors, 1, 65535)
        proto = _string(item.get("proto", "udp"), path + ".proto", errors)
        if proto is not None and proto not in ("udp", "tcp"):
            errors.append("%s.proto: must be udp or tcp" % path)
        config = item.get("config")  # the profile holds keys: never part of a message
        if not _given(config):
            errors.append("%s.config: is required (the OpenVPN client profile)" % path)
        elif not isinstance(config, str):
            errors.append("%s.config: must be a string, not %s" % (path, type(config).__name__))
        elif not config.strip():
            errors.append("%s: config (the OpenVPN client profile) is empty" % label)
        has_user = _one_line(item.get("username"), path + ".username", errors)
        has_password = _one_line(item.get("password"), path + ".password", errors)
        if has_user != has_password:
            errors.append("%s: give both username and password, or neither" % label)
        # The provider's resolver sends its queries from the veth's IPv4 address into the namespace.
        if item.get("dns_upstreams") is not None:
            upstreams = _addresses(item["dns_upstreams"], path + ".dns_upstreams", errors, version=4)
        else:
            upstreams = [a for a in dns_upstreams if ipaddress.ip_address(a).version == 4]
        if not upstreams:
            errors.append("%s: its resolver needs an IPv4 upstream (dns_upstreams)" % label)
        out.append(
            {
                "name": name,
                "server": str(server) if server else None,
                "port": port,
                "proto": proto,
                "index": index,
                "has_auth": has_user and has_password,
                "dns_upstreams": upstreams,
                "fallback": _fallback(item, path, errors),
                "health_raw": item.get("health"),
            }
        )
    return out


def _records(raw, errors):
    out = []
    var = VARIABLES["dns_records"]
    for index, item in enumerate(_list(raw, var, errors)):
        path = "%s[%d]" % (var, index)
        if not isinstance(item, dict):
            errors.append("%s: must be a dict with keys name and address, not %s" % (path, type(item).__name__))
            continue
        unknown = sorted(str(key) for key in set(item) - _RECORD_KEYS)
        if unknown:
            errors.append("%s: unknown keys %s (a record has name and address)" % (path, ", ".join(unknown)))
        name = _required(item, "name", path, errors)
        if name is not None:
            name = _string(name, path + ".name", errors)
        if name is not None and not _DNS_NAME.match(name):
            errors.append("%s.name %r is not a DNS name" % (path, name))
            name = None
        addr = _required(item, "address", path, errors)
        if addr is not None:
            addr = _parsed(parse_address, addr, path + ".address", errors)
        if name is not None and addr is not None:
            out.append({"name": name.rstrip("."), "address": str(addr)})
    return out


def _endpoint(value, errors, needed_by):
    """The endpoint host given to unmanaged peers: an IP address or a DNS name, as written in Endpoint =."""
    what = VARIABLES["endpoint"]
    if not _given(value):
        if needed_by:
            errors.append(
                "%s (the gateway's public address or name) is needed by the peers"
                " without public_key: %s" % (what, ", ".join(needed_by))
            )
        return None
    text = _string(value, what, errors)
    if text is None:
        return None
    addr, _error = parse_address(text, what=what)
    if addr is not None:
        return "[%s]" % addr if addr.version == 6 else str(addr)
    if _DNS_NAME.match(text):
        return text
    errors.append("%s %r is neither an IP address (without a scope id) nor a DNS name" % (what, text))
    return None


def _settings(settings, errors):
    """Role-wide values that reach configuration files and commands."""
    for field in ("interface", "uplink"):
        if field in settings:
            err = check_ifname(settings[field], VARIABLES[field])
            if err:
                errors.append(err)
    err = check_program(settings.get("wireguard_userspace"), VARIABLES["wireguard_userspace"])
    if err:
        errors.append(err)
    state = _string(settings.get("state", "present"), VARIABLES["state"], errors)
    if state is not None and state not in ("present", "absent"):
        errors.append("%s: must be present or absent" % VARIABLES["state"])
    endpoint_port = _number(
        settings.get("endpoint_port"), 0, VARIABLES["endpoint_port"], errors, 0, 65535, "0 is the listen port"
    )
    port = _number(settings.get("port"), 51820, VARIABLES["port"], errors, 1, 65535)
    return {
        "state": state,
        "port": port,
        "mtu": _number(settings.get("mtu"), 1420, VARIABLES["mtu"], errors, 576, 65535),
        "endpoint_port": endpoint_port or port,
        "keepalive": _number(settings.get("keepalive"), 25, VARIABLES["keepalive"], errors, 0, 65535, "0 is off"),
        "dns_port_base": _number(settings.get("dns_port_base"), 5300, VARIABLES["dns_port_base"], errors, 1024, 65535),
        "table_base": _number(settings.get("table_base"), 200, VARIABLES["table_base"], errors, None, None),
        "priority_base": _number(settings.get("priority_base"), 2000, VARIABLES["priority_base"], errors, None, None),
    }


def _veth_network(value, default, version, outside, errors):
    """The network cut into one /30 (/126) per provider; sized, never listed."""
    what = VARIABLES["veth_network" if version == 4 else "veth_network6"]
    net = _parsed(parse_network, default if value is None else value, what, errors, version=version)
    if net is None:
        return None
    shortest, longest = _VETH_PREFIX[version]
    if not shortest <= net.prefixlen <= longest:
        errors.append("%s %s must be a /%d to /%d (a /%d for each provider)" % (what, net, shortest, longest, longest))
        return None
    if outside is not None and net.overlaps(outside):
        errors.append("%s %s must lie outside the peer subnet %s" % (what, net, outside))
        return None
    return net


def _veth_slot(net, index):
    """The INDEXth /30 (IPv4) or /126 (IPv6) of NET, and its first two addresses, by arithmetic."""
    prefix = 30 if net.version == 4 else 126
    first = int(net.network_address) + index * 4
    slot = (ipaddress.IPv4Network if net.version == 4 else ipaddress.IPv6Network)((first, prefix))
    return slot, slot.network_address + 1, slot.network_address + 2


def _address6(item, path, label, v6, exit_, errors):
    """A peer's IPv6 address: in the IPv6 subnet, in a class with the same exit as its IPv4 address."""
    value = item.get("address6")
    if not _given(value):
        return None
    iface = _parsed(parse_interface, value, path + ".address6", errors, version=6)
    if iface is None:
        return None
    addr = iface.ip
    if v6 is None:
        errors.append("%s: address6 needs splitroute_gateway_address6 (the gateway's IPv6 address)" % label)
        return None
    subnet6 = v6["iface"].network
    if addr not in subnet6:
        errors.append("%s: address6 %s is outside the IPv6 peer subnet %s" % (label, addr, subnet6))
    elif addr in (v6["iface"].ip, subnet6.network_address):
        errors.append("%s: address6 %s is the gateway's or the subnet's own" % (label, addr))
    else:
        exit6 = next((e for net, e in v6["ranges"] if addr in net), None)
        if exit6 is None:
            errors.append("%s: address6 %s is in no address class (range6)" % (label, addr))
        elif exit_ is not None and exit6 != exit_:
            errors.append(
                "%s: address6 %s is in a class with exit %s, its address in one with exit %s"
                % (label, addr, exit6, exit_)
            )
    return addr


def _allowed_ips(item, path, label, managed, errors):
    """The AllowedIPs of an unmanaged peer's client configuration."""
    raw = item.get("allowed_ips")
    if raw is None:
        if managed:
            return []
        return ["0.0.0.0/0", "::/0"] if _given(item.get("address6")) else ["0.0.0.0/0"]
    if managed:
        errors.append("%s: allowed_ips is only for peers without public_key (their client configuration)" % label)
        return []
    values = _list(raw, path + ".allowed_ips", errors)
    if isinstance(raw, list) and not values:
        errors.append("%s: allowed_ips must be a non-empty list of networks" % label)
    out = []
    for index, value in enumerate(values):
        net = _parsed(parse_network, value, "%s.allowed_ips[%d]" % (path, index), errors)
        if net is not None:
            out.append(str(net))
    return out


def _peer_keys(item, path, label, keys_needed, seen_keys, errors):
    """(public key or None, managed, has a preshared key). Key values never reach a message."""
    key = item.get("public_key")
    managed = _given(key)
    psk = item.get("preshared_key")
    if not keys_needed:  # state absent: removing the gateway needs no peer key
        return None, managed, False
    if not managed:
        key = None
    elif not isinstance(key, str):
        errors.append("%s.public_key: must be a string, not %s" % (path, type(key).__name__))
        key = None
    elif not _key(key):
        errors.append("%s: public_key is not a WireGuard key (base64 of 32 bytes)" % label)
    elif key in seen_keys:
        errors.append("%s: public_key is the same as %s's" % (label, seen_keys[key]))
    else:
        seen_keys[key] = label
    if not _given(psk):
        return key, managed, False
    if not isinstance(psk, str):
        errors.append("%s.preshared_key: must be a string, not %s" % (path, type(psk).__name__))
    elif not _key(psk):
        errors.append("%s: preshared_key is not a WireGuard key" % label)
    return key, managed, True


def _peers(peers, subnet, iface, ranges, errors, v6=None, keys_needed=True):
    out_peers = []
    seen_keys, seen_addrs = {}, {}
    names = "must be letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)"
    for _index, path, item, name, label in _entries(peers, PEERS, "peer", _PEER_KEYS, _PEER_NAME, names, errors):
        key, managed, psk = _peer_keys(item, path, label, keys_needed, seen_keys, errors)
        allowed = _allowed_ips(item, path, label, managed, errors)
        value = _required(item, "address", path, errors)
        addr = _parsed(parse_interface, value, path + ".address", errors, version=4) if value is not None else None
        if addr is None:
            continue
        addr = addr.ip
        exit_ = None
        if addr not in subnet:
            errors.append("%s: address %s is outside the peer subnet %s" % (label, addr, subnet))
        elif addr in (iface.ip, subnet.network_address, subnet.broadcast_address):
            errors.append("%s: address %s is the gateway's or the subnet's own" % (label, addr))
        else:
            exit_ = next((e for net, e in ranges if addr in net), None)
            if exit_ is None:
                errors.append("%s: address %s is in no address class" % (label, addr))
        # the parsed addresses are compared, never their spelling
        if addr in seen_addrs:
            errors.append("%s: address %s is %s's too" % (label, addr, seen_addrs[addr]))
        seen_addrs[addr] = label
        addr6 = _address6(item, path, label, v6, exit_, errors)
        if addr6 is not None:
            if addr6 in seen_addrs:
                errors.append("%s: address6 %s is %s's too" % (label, addr6, seen_addrs[addr6]))
            seen_addrs[addr6] = label
        out_peers.append(
            {
                "name": name,
                "public_key": key,
                # only whether there is one: the plan is printed (set_fact at -v), the key is a secret
                # (gateway_secrets gives it to the no_log tasks that write it)
                "preshared_key": psk,
                "address": str(addr),
                "address6": str(addr6) if addr6 is not None else None,
                "exit": exit_,
                "managed": managed,
                "allowed_ips": allowed,
            }
        )
    return out_peers


def _ipv6(settings, errors):
    """The IPv6 side (None when splitroute_gateway_address6 is empty): the gateway's address and the veth network."""
    value = settings.get("address6")
    if not _given(value):
        return None
    what = VARIABLES["address6"]
    iface = _parsed(parse_interface, value, what, errors, version=6, prefix_required=True)
    if iface is None:
        return None
    if iface.network.prefixlen > 120:
        errors.append("%s's prefix must be /120 or shorter" % what)
    veth = _veth_network(settings.get("veth_network6"), "fd00:255:255::/64", 6, iface.network, errors)
    return {"iface": iface, "veth_network": veth, "ranges": []}


def _classes(classes, subnet, names, v6, errors):
    ranges = []
    for index, item in enumerate(classes):
        path = "%s[%d]" % (CLASSES, index)
        if not isinstance(item, dict):
            errors.append("%s: must be a dict with keys range and exit, not %s" % (path, type(item).__name__))
            continue
        unknown = sorted(str(key) for key in set(item) - _CLASS_KEYS)
        if unknown:
            errors.append("%s: unknown keys %s (a class has range, range6 and exit)" % (path, ", ".join(unknown)))
        exit_ = _required(item, "exit", path, errors)
        if exit_ is not None:
            exit_ = _string(exit_, path + ".exit", errors)
        value = _required(item, "range", path, errors)
        net = _parsed(parse_network, value, path + ".range", errors, version=4) if value is not None else None
        if net is None:
            continue
        label = "class %s" % net
        if not net.subnet_of(subnet):
            errors.append("%s: range is outside the peer subnet %s" % (label, subnet))
        if exit_ is not None and exit_ != "direct" and exit_ not in names:
            errors.append("%s: exit %r is neither direct nor a provider name" % (label, exit_))
        for other, _exit in ranges:
            if net.overlaps(other):
                errors.append("%s: range overlaps class %s" % (label, other))
        ranges.append((net, exit_))
        _range6(item, path, label, exit_, v6, errors)
    return ranges


def _range6(item, path, label, exit_, v6, errors):
    value = item.get("range6")
    if not _given(value):
        return
    net = _parsed(parse_network, value, path + ".range6", errors, version=6)
    if net is None:
        return
    if v6 is None:
        errors.append("%s: range6 needs splitroute_gateway_address6 (the gateway's IPv6 address)" % label)
        return
    if not net.subnet_of(v6["iface"].network):
        errors.append("%s: range6 %s is outside the IPv6 peer subnet %s" % (label, net, v6["iface"].network))
    for other, _exit in v6["ranges"]:
        if net.overlaps(other):
            errors.append("%s: range6 %s overlaps range6 %s" % (label, net, other))
    v6["ranges"].append((net, exit_))


_INPUT_KEYS = {"enabled", "ssh_from", "ssh_port", "allow"}
_ALLOW_KEYS = {"proto", "port"}


def _input_policy(raw, errors):
    """Seed 004's input policy (off by default): what may reach the gateway itself. Enabled, it needs the
    networks SSH may come from (an empty list would lock the operator out: refused)."""
    what = VARIABLES["input_policy"]
    raw, error = want_dict({} if raw is None else raw, what)
    if error:
        errors.append(error)
        raw = {}
    unknown = sorted(map(str, set(raw) - _INPUT_KEYS))
    if unknown:
        errors.append("%s: unknown keys %s (known: %s)" % (what, ", ".join(unknown), ", ".join(sorted(_INPUT_KEYS))))
    enabled, error = want_bool(raw.get("enabled", False), what + ".enabled")
    if error:
        errors.append(error)
    ssh = {4: [], 6: []}
    for index, value in enumerate(_list(raw.get("ssh_from", []), what + ".ssh_from", errors)):
        net = _parsed(parse_network, value, "%s.ssh_from[%d]" % (what, index), errors)
        if net is not None:
            ssh[net.version].append(str(net))
    if enabled and not (ssh[4] or ssh[6]) and not any(e.startswith(what + ".ssh_from") for e in errors):
        errors.append(
            "%s.ssh_from: give the networks SSH may come from; with none the policy would lock the operator out" % what
        )
    allow = []
    for index, item in enumerate(_list(raw.get("allow", []), what + ".allow", errors)):
        where = "%s.allow[%d]" % (what, index)
        if not isinstance(item, dict) or set(item) - _ALLOW_KEYS:
            errors.append("%s: a dict with proto (tcp or udp) and port" % where)
            continue
        if item.get("proto") not in ("tcp", "udp"):
            errors.append("%s.proto: must be tcp or udp" % where)
            continue
        port = _number(item.get("port"), None, where + ".port", errors, 1, 65535)
        if port is not None:
            allow.append({"proto": item["proto"], "port": port})
    return {
        "enabled": bool(enabled),
        "ssh_from4": ssh[4],
        "ssh_from6": ssh[6],
        "ssh_port": _number(raw.get("ssh_port"), 22, what + ".ssh_port", errors, 1, 65535),
        "allow": allow,
    }


def gateway_input_guard(plan, ssh_connection=""):
    """The reason the gateway's input policy would cut the connection this run came by (SSH_CONNECTION on the
    host: client address, client port, server address, server port), or "" when it would not (no policy, not
    SSH, or the client address is in ssh_from)."""
    policy = (plan or {}).get("input_policy") or {}
    fields = str(ssh_connection or "").split()
    if not policy.get("enabled") or len(fields) != 4:
        return ""
    addr, _error = parse_address(fields[0])
    if addr is None:
        return ""
    nets = [ipaddress.ip_network(n) for n in policy["ssh_from%d" % addr.version]]
    if any(addr in net for net in nets) and fields[3] == str(policy["ssh_port"]):
        return ""
    return (
        "%s would lock out this run: it comes by SSH from %s to port %s, and ssh_from (%s) or ssh_port (%s) does not"
        " admit it" % (VARIABLES["input_policy"], addr, fields[3],
                       ", ".join(policy["ssh_from4"] + policy["ssh_from6"]), policy["ssh_port"])
    )  # fmt: skip


def _fail(errors):
    raise AnsibleFilterError("invalid gateway configuration:\n  - " + "\n  - ".join(errors))


def gateway_plan(peers, classes, providers, settings):
    errors = []
    if not isinstance(settings, dict):
        _fail(["the settings must be a dict, not %s" % type(settings).__name__])
    peers, classes, providers = (
        _list(v, n, errors) for v, n in ((peers, PEERS), (classes, CLASSES), (providers, PROVIDERS))
    )
    what = VARIABLES["address"]
    value = settings.get("address")
    if not _given(value):
        errors.append("%s: is required (the gateway's IPv4 ADDRESS/PREFIX)" % what)
        _fail(errors)
    iface = _parsed(parse_interface, value, what, errors, version=4, prefix_required=True)
    if iface is None:
        _fail(errors)
    subnet = iface.network
    v6 = _ipv6(settings, errors)
    role = _settings(settings, errors)
    veth_net = _veth_network(settings.get("veth_network"), "10.255.255.0/24", 4, subnet, errors)
    local = {4: [], 6: []}
    for index, item in enumerate(_list(settings.get("local_networks"), VARIABLES["local_networks"], errors)):
        where = "%s[%d]" % (VARIABLES["local_networks"], index)
        net = _parsed(parse_network, item, where, errors)
        if net is None:
            continue
        if net.version == 6 and v6 is None:
            errors.append(
                "%s: %s is IPv6, and the peers have no IPv6 (%s is empty)" % (where, net, VARIABLES["address6"])
            )
            continue
        local[net.version].append(str(net))
    if len(local[4]) + len(local[6]) > _MAX_LOCAL_NETWORKS:
        errors.append(
            "%s: at most %d networks (their rules take the priorities just above %s)"
            % (VARIABLES["local_networks"], _MAX_LOCAL_NETWORKS, VARIABLES["priority_base"])
        )
    raw_upstreams = settings.get("dns_upstreams", ["9.9.9.9"])
    upstreams = _addresses(raw_upstreams, VARIABLES["dns_upstreams"], errors)
    if isinstance(raw_upstreams, list) and not raw_upstreams:
        errors.append("%s must name at least one resolver" % VARIABLES["dns_upstreams"])
    records = _records(settings.get("dns_records"), errors)

    prov = _providers(providers, upstreams, errors)
    _failover_checks(prov, v6, errors)
    input_policy = _input_policy(settings.get("input_policy"), errors)
    bypass, found = _bypass.settings(settings.get("dns_bypass"), VARIABLES["dns_bypass"])
    errors.extend(found)
    if bypass["doh_sources"]:
        errors.append(
            "%s.doh_sources: lists kept current on the host are the client role's (give the gateway doh_addresses)"
            % VARIABLES["dns_bypass"]
        )
        bypass["doh_sources"] = []
    for key in ("https_records", "quic"):
        if bypass[key]:
            errors.append(
                "%s.%s: the gateway routes its peers by address, with no listed names or destinations (a client's"
                " part)" % (VARIABLES["dns_bypass"], key)
            )
    names = {p["name"] for p in prov if p["name"]}
    ranges = _classes(classes, subnet, names, v6, errors)

    keys_needed = role["state"] != "absent"
    out_peers = _peers(peers, subnet, iface, ranges, errors, v6, keys_needed=keys_needed)
    endpoint = _endpoint(settings.get("endpoint"), errors, [p["name"] for p in out_peers if not p["managed"]])

    # The ranges of tables and priorities the role owns hold none of the kernel's own.
    count = len(prov)
    if count > _MAX_PROVIDERS:
        errors.append(
            "%s: at most %d providers (their rules take priorities %s+100 to +199)"
            % (PROVIDERS, _MAX_PROVIDERS, VARIABLES["priority_base"])
        )
    if role["table_base"] is not None:
        err = check_tables(role["table_base"], max(count, 1), VARIABLES["table_base"])
        if err:
            errors.append(err)
    if role["priority_base"] is not None:
        err = check_priorities(
            role["priority_base"], role["priority_base"] + _PRIORITY_SPAN - 1, VARIABLES["priority_base"]
        )
        if err:
            errors.append(err)
    if veth_net is not None and count > 2 ** (30 - veth_net.prefixlen):
        errors.append("%s %s is too small for %d providers (a /30 each)" % (VARIABLES["veth_network"], veth_net, count))
    if v6 is not None and v6["veth_network"] is not None and count > 2 ** (126 - v6["veth_network"].prefixlen):
        errors.append(
            "%s %s is too small for %d providers (a /126 each)"
            % (VARIABLES["veth_network6"], v6["veth_network"], count)
        )
    if role["dns_port_base"] is not None and prov:
        last = role["dns_port_base"] + count - 1
        if last > 65535 or role["dns_port_base"] <= 53 <= last:
            errors.append("%s leaves no room for %d resolver ports" % (VARIABLES["dns_port_base"], count))
    if errors:
        _fail(errors)

    for index, p in enumerate(prov):
        slot, host, ns = _veth_slot(veth_net, index)
        p.update(
            {
                "table": role["table_base"] + index,
                "priority": role["priority_base"] + 100 + index,
                "host_veth": _names.provider_host_veth(p["name"]),
                "ns_veth": _names.PROVIDER_NS_VETH,
                "netns": _names.provider_netns(p["name"]),
                "veth_network": str(slot),
                "host_address": str(host),
                "ns_address": str(ns),
                "ranges": [str(net) for net, e in ranges if e == p["name"]],
                "dns_port": role["dns_port_base"] + index,
            }
        )
        if v6 is not None:
            slot6, host6, ns6 = _veth_slot(v6["veth_network"], index)
            p.update(
                {
                    "veth_network6": str(slot6),
                    "host_address6": str(host6),
                    "ns_address6": str(ns6),
                    "ranges6": [str(net) for net, e in v6["ranges"] if e == p["name"]],
                }
            )
    for p in prov:
        p["exit_veths"] = [_names.provider_host_veth(n) for n in [p["name"]] + p["fallback"]]
        # the providers that fall back to this one: their classes and their resolver's queries (from their
        # veth address, to this provider's upstreams) may leave by this namespace
        p["guests"] = [
            {
                "name": g["name"],
                "ranges": g["ranges"],
                "ranges6": g.get("ranges6", []),
                "host_address": g["host_address"],
            }
            for g in prov
            if p["name"] in g["fallback"]
        ]
        # the IPv6 ranges its namespace forwards (its own classes' and its guests')
        p["ns_ranges6"] = p.get("ranges6", []) + [r for g in p["guests"] for r in g["ranges6"]]
    return {
        "address": str(iface),
        "ip": str(iface.ip),
        "subnet": str(subnet),
        "port": role["port"],
        "mtu": role["mtu"],
        "interface": settings.get("interface", "wg0"),
        "table_base": role["table_base"],
        "priority_base": role["priority_base"],
        "priorities": "%d-%d" % (role["priority_base"], role["priority_base"] + _PRIORITY_SPAN - 1),
        "local_networks": local[4],
        "local_networks6": local[6],
        "direct_ranges": [str(net) for net, e in ranges if e == "direct"],
        "address6": str(v6["iface"]) if v6 else None,
        "ip6": str(v6["iface"].ip) if v6 else None,
        "subnet6": str(v6["iface"].network) if v6 else None,
        "direct_ranges6": [str(net) for net, e in v6["ranges"] if e == "direct"] if v6 else [],
        "peers": out_peers,
        "unmanaged": [p for p in out_peers if not p["managed"]],
        "providers": prov,
        "dns_upstreams": upstreams,
        "dns_records": records,
        "endpoint": endpoint,
        "endpoint_port": role["endpoint_port"],
        "keepalive": role["keepalive"],
        # seed 004's input policy: WireGuard, the peers' DNS (53 and the providers' resolvers' ports), SSH
        "input_policy": dict(input_policy, dns_ports=[53] + [p["dns_port"] for p in prov]),
        # DoT, DoH and the canaries for the peers (_bypass): DoT may still reach the resolvers' upstreams
        "bypass": _bypass.plan(bypass, upstreams + [u for p in prov for u in p["dns_upstreams"]]),
    }


def gateway_plan_file(plan, nft_table=None):
    """The plan as the role renders it to /etc/splitroute/gateway.json for the host program: the plan
    itself (it holds no secret) with the role, the plan format's version, the names and paths
    (_names) and every list the role's tasks, its templates and the host program take from it
    (rules, routes, scope, sysctls, namespaces, units: _host_gateway.host_lists), computed once."""
    if not isinstance(plan, dict) or not isinstance(plan.get("providers"), list):
        raise AnsibleFilterError("gateway_plan_file expects the plan gateway_plan made, not %s" % type(plan).__name__)
    if nft_table not in (None, _names.GATEWAY_NFT_TABLE):
        raise AnsibleFilterError(
            "gateway_plan_file: the nftables table is %s (_names), not %r" % (_names.GATEWAY_NFT_TABLE, nft_table)
        )
    return dict(plan, role="gateway", version=PLAN_VERSION, **host_lists(plan))


def _old_plan(value):
    """The previous plan from the host (its slurped JSON text, a dict or nothing)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) and value.get("role") == "gateway" else None


def gateway_prune(old, new, files=None):
    """What to remove from the host (see _host_gateway.prune): OLD, the host's previous plan (its JSON
    text, or nothing); NEW, the plan being applied; FILES, the paths of the role's namespace tables
    (netns-NAME.nft) and OpenVPN profiles (openvpn/NAME.conf) found on the host."""
    if not isinstance(new, dict):
        raise AnsibleFilterError("gateway_prune expects the plan gateway_plan_file made, not %s" % type(new).__name__)
    files = [f for f in files or [] if isinstance(f, str)]
    return prune(_old_plan(old), new, {"files": files})


def gateway_secrets(peers):
    """The peers' preshared keys by name, for the no_log tasks that write them (wg.conf and the
    unmanaged peers' client configurations); the plan only says whether a peer has one.

    Run it after gateway_plan, which refuses what is not a key: anything else is left out here."""
    out = {}
    for item in peers if isinstance(peers, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and _key(item.get("preshared_key")):
            out[item["name"]] = item["preshared_key"]
    return out


def gateway_genkey(_value=None):
    """A new WireGuard private key (base64 of 32 random bytes, clamped as `wg genkey` does)."""
    return _x25519.new_private_key()


def gateway_pubkey(private_key):
    """The WireGuard public key (X25519) of a base64 private key, as `wg pubkey` prints it."""
    try:
        return _x25519.public_key(private_key if _key(private_key) else None)
    except ValueError:
        # never echo the value: it is a secret
        raise AnsibleFilterError(
            "gateway_pubkey: the input is not a WireGuard private key (base64 of 32 bytes)"
        ) from None


class FilterModule:
    def filters(self):
        return {
            "gateway_plan": gateway_plan,
            "gateway_plan_file": gateway_plan_file,
            "gateway_prune": gateway_prune,
            "gateway_secrets": gateway_secrets,
            "gateway_genkey": gateway_genkey,
            "gateway_input_guard": gateway_input_guard,
            "gateway_pubkey": gateway_pubkey,
        }
