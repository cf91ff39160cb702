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
  - Secrets (the profile, the password) are not copied into the plan; the role reads them from its variable by
    the provider's C(index).
  - Returns the plan - each peer with its exit, each provider with its routing table, rule priority, veth names and
    addresses and the ranges that leave through it.
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
    description: Role-wide settings (address, table_base, priority_base, veth_network, local_networks).
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
  description: The plan (subnet, address, peers, direct ranges, providers), validated and numbered.
  type: dict
"""

import base64
import ipaddress
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import check_program

_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_PEER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PEER_KEYS = {"name", "public_key", "address", "preshared_key"}
_PROVIDER_KEYS = {"name", "config", "server", "port", "proto", "username", "password"}
_CLASS_KEYS = {"range", "exit"}


def _key(value):
    try:
        return isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False


def _net(value):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def _providers(raw, errors):
    out = []
    seen = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            errors.append("provider #%d is not a dict" % index)
            continue
        name = item.get("name")
        label = "provider %s" % (name if isinstance(name, str) else "#%d" % index)
        unknown = sorted(set(item) - _PROVIDER_KEYS)
        if unknown:
            errors.append("%s: unknown keys %s" % (label, ", ".join(unknown)))
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append("%s: name must be 1-10 lowercase letters or digits, starting with a letter" % label)
        elif name in seen:
            errors.append("%s: name used twice" % label)
        seen.add(name)
        try:
            server = ipaddress.IPv4Address(str(item.get("server")))
        except ValueError:
            errors.append("%s: server must be the provider's IPv4 address, got %r" % (label, item.get("server")))
            server = None
        try:
            port = int(item.get("port", 1194))
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536:
            errors.append("%s: port must be 1-65535" % label)
        proto = item.get("proto", "udp")
        if proto not in ("udp", "tcp"):
            errors.append("%s: proto must be udp or tcp" % label)
        if not isinstance(item.get("config"), str) or not item.get("config", "").strip():
            errors.append("%s: config (the OpenVPN client profile) is empty" % label)
        if bool(item.get("username")) != bool(item.get("password")):
            errors.append("%s: give both username and password, or neither" % label)
        out.append(
            {
                "name": name,
                "server": str(server) if server else None,
                "port": port,
                "proto": proto,
                "index": index,
                "has_auth": bool(item.get("username")),
            }
        )
    return out


def gateway_plan(peers, classes, providers, settings):
    if not isinstance(peers, list) or not isinstance(classes, list) or not isinstance(providers, list):
        raise AnsibleFilterError("splitroute_gateway_peers, _classes and _providers must be lists")
    errors = []
    try:
        iface = ipaddress.IPv4Interface(str(settings["address"]))
    except ValueError:
        raise AnsibleFilterError(
            "splitroute_gateway_address must be an IPv4 ADDRESS/PREFIX, got %r" % settings["address"]
        ) from None
    subnet = iface.network
    table_base = int(settings.get("table_base", 200))
    priority_base = int(settings.get("priority_base", 2000))
    veth_net = _net(settings.get("veth_network", "10.255.255.0/24"))
    if veth_net is None or veth_net.version != 4 or veth_net.overlaps(subnet):
        errors.append("splitroute_gateway_veth_network must be an IPv4 network outside the peer subnet")
    err = check_program(settings.get("wireguard_userspace"), "splitroute_gateway_wireguard_userspace")
    if err:
        errors.append(err)
    local = []
    for item in settings.get("local_networks") or []:
        net = _net(item)
        if net is None:
            errors.append("local network %r is not a network in CIDR form (host bits zero)" % item)
        else:
            local.append(str(net))

    prov = _providers(providers, errors)
    names = {p["name"] for p in prov}

    ranges = []
    for index, item in enumerate(classes):
        if not isinstance(item, dict) or sorted(set(item) - _CLASS_KEYS):
            errors.append("class #%d must be a dict with keys range and exit" % index)
            continue
        net = _net(item.get("range"))
        label = "class %s" % item.get("range")
        if net is None or net.version != 4:
            errors.append("%s: range must be an IPv4 network in CIDR form (host bits zero)" % label)
            continue
        if not net.subnet_of(subnet):
            errors.append("%s: range is outside the peer subnet %s" % (label, subnet))
        exit_ = item.get("exit")
        if exit_ != "direct" and exit_ not in names:
            errors.append("%s: exit %r is neither direct nor a provider name" % (label, exit_))
        for other, _exit in ranges:
            if net.overlaps(other):
                errors.append("%s: range overlaps class %s" % (label, other))
        ranges.append((net, exit_))

    out_peers = []
    seen_names, seen_keys, seen_addrs = {}, {}, {}
    for index, item in enumerate(peers):
        if not isinstance(item, dict):
            errors.append("peer #%d is not a dict" % index)
            continue
        name = item.get("name")
        label = "peer %s" % (name if isinstance(name, str) else "#%d" % index)
        unknown = sorted(set(item) - _PEER_KEYS)
        if unknown:
            errors.append("%s: unknown keys %s" % (label, ", ".join(unknown)))
        if not isinstance(name, str) or not _PEER_NAME.match(name):
            errors.append("%s: name must be letters, digits, '.', '_' or '-'" % label)
        elif name in seen_names:
            errors.append("%s: name used twice" % label)
        seen_names[name] = True
        key = item.get("public_key")
        if not _key(key):
            errors.append("%s: public_key is not a WireGuard key (base64 of 32 bytes)" % label)
        elif key in seen_keys:
            errors.append("%s: public_key is the same as peer %s's" % (label, seen_keys[key]))
        else:
            seen_keys[key] = name
        psk = item.get("preshared_key") or ""
        if psk and not _key(psk):
            errors.append("%s: preshared_key is not a WireGuard key" % label)
        try:
            addr = ipaddress.IPv4Address(str(item.get("address")).split("/", maxsplit=1)[0])
        except ValueError:
            errors.append("%s: address must be an IPv4 address, got %r" % (label, item.get("address")))
            continue
        exit_ = None
        if addr not in subnet:
            errors.append("%s: address %s is outside the peer subnet %s" % (label, addr, subnet))
        elif addr in (iface.ip, subnet.network_address, subnet.broadcast_address):
            errors.append("%s: address %s is the gateway's or the subnet's own" % (label, addr))
        else:
            exit_ = next((e for net, e in ranges if addr in net), None)
            if exit_ is None:
                errors.append("%s: address %s is in no address class" % (label, addr))
        if addr in seen_addrs:
            errors.append("%s: address %s is peer %s's too" % (label, addr, seen_addrs[addr]))
        seen_addrs[addr] = name
        out_peers.append({"name": name, "public_key": key, "preshared_key": psk, "address": str(addr), "exit": exit_})

    veths = list(veth_net.subnets(new_prefix=30)) if veth_net is not None and veth_net.prefixlen <= 30 else []
    if len(prov) > len(veths):
        errors.append("splitroute_gateway_veth_network is too small for %d providers (a /30 each)" % len(prov))
    if errors:
        raise AnsibleFilterError("invalid gateway configuration:\n  - " + "\n  - ".join(errors))

    for index, p in enumerate(prov):
        hosts = list(veths[index].hosts())
        p.update(
            {
                "table": table_base + index,
                "priority": priority_base + 100 + index,
                "host_veth": "srgw-%s" % p["name"],
                "ns_veth": "srgw0",
                "netns": "srgw-%s" % p["name"],
                "veth_network": str(veths[index]),
                "host_address": str(hosts[0]),
                "ns_address": str(hosts[1]),
                "ranges": [str(net) for net, e in ranges if e == p["name"]],
            }
        )
    return {
        "address": str(iface),
        "ip": str(iface.ip),
        "subnet": str(subnet),
        "local_networks": local,
        "direct_ranges": [str(net) for net, e in ranges if e == "direct"],
        "peers": out_peers,
        "providers": prov,
    }


class FilterModule:
    def filters(self):
        return {"gateway_plan": gateway_plan}
