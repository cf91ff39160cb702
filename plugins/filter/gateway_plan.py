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
  - Also checks everything that reaches a configuration file - interface names, DNS upstreams and split-horizon
    records, the endpoint given to unmanaged peers - so that no value can add a line to one.
  - A peer without C(public_key) is unmanaged (a phone, a laptop) - the role generates its key on the controller and
    writes its client configuration; it may carry C(allowed_ips) for that configuration, and needs O(settings.endpoint).
  - Returns the plan - each peer with its exit, each provider with its routing table, rule priority, veth names and
    addresses, the ranges that leave through it and its resolver (port and upstreams).
  - IPv6 is optional - with C(address6) set, classes may carry C(range6) and peers C(address6) (in a class with the
    same exit as their IPv4 address); each provider gets a /126 of C(veth_network6).
  - The same file provides C(gateway_genkey) (a new WireGuard private key, base64) and C(gateway_pubkey) (the public
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
  description: The plan (subnet, address, peers, direct ranges, providers), validated and numbered.
  type: dict
"""

import base64
import ipaddress
import itertools
import re
import secrets

from ansible.errors import AnsibleFilterError

try:  # ansible-core requires cryptography; gateway_pubkey says so clearly if it is missing anyway
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
except ImportError:
    X25519PrivateKey = None

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import check_ifname, check_program

_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}\Z")
_PEER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(r"^(?=.{1,253}\.?\Z)%s(?:\.%s)*\.?\Z" % (_LABEL, _LABEL))
_PEER_KEYS = {"name", "public_key", "address", "address6", "preshared_key", "allowed_ips"}
_PROVIDER_KEYS = {"name", "config", "server", "port", "proto", "username", "password", "dns_upstreams"}
_CLASS_KEYS = {"range", "range6", "exit"}
_RECORD_KEYS = {"name", "address"}


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


def _int(value, default):
    try:
        return int(default if value is None else value)
    except (TypeError, ValueError):
        return None


def _addresses(raw, what, errors, version=None):
    """A list of IP addresses (each checked, of VERSION when given), as strings."""
    if not isinstance(raw, list):
        errors.append("%s must be a list of IP addresses" % what)
        return []
    out = []
    for value in raw:
        try:
            addr = ipaddress.ip_address(str(value))
        except ValueError:
            errors.append("%s: %r is not an IP address" % (what, value))
            continue
        if version is not None and addr.version != version:
            errors.append("%s: %s is not an IPv%d address" % (what, addr, version))
            continue
        out.append(str(addr))
    return out


def _entries(raw, kind, known, name_re, name_rule, errors):
    """Yield (index, item, name, label) for each dict of RAW, noting what is not a dict, unknown
    keys, a name that breaks NAME_RULE and a name used twice."""
    seen = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            errors.append("%s #%d is not a dict" % (kind, index))
            continue
        name = item.get("name")
        label = "%s %s" % (kind, name if isinstance(name, str) else "#%d" % index)
        unknown = sorted(set(item) - known)
        if unknown:
            errors.append("%s: unknown keys %s" % (label, ", ".join(unknown)))
        if not isinstance(name, str) or not name_re.match(name):
            errors.append("%s: %s" % (label, name_rule))
        elif name in seen:
            errors.append("%s: name used twice" % label)
        seen.add(name)
        yield index, item, name, label


def _providers(raw, dns_upstreams, errors):
    out = []
    names = "name must be 1-10 lowercase letters or digits, starting with a letter"
    for index, item, name, label in _entries(raw, "provider", _PROVIDER_KEYS, _NAME, names, errors):
        try:
            server = ipaddress.IPv4Address(str(item.get("server")))
        except ValueError:
            errors.append("%s: server must be the provider's IPv4 address, got %r" % (label, item.get("server")))
            server = None
        port = _int(item.get("port"), 1194)
        if port is None or not 0 < port < 65536:
            errors.append("%s: port must be 1-65535" % label)
        proto = item.get("proto", "udp")
        if proto not in ("udp", "tcp"):
            errors.append("%s: proto must be udp or tcp" % label)
        if not isinstance(item.get("config"), str) or not item.get("config", "").strip():
            errors.append("%s: config (the OpenVPN client profile) is empty" % label)
        if bool(item.get("username")) != bool(item.get("password")):
            errors.append("%s: give both username and password, or neither" % label)
        for field in ("username", "password"):
            value = item.get(field)
            if value and (not isinstance(value, str) or "\n" in value or "\r" in value):
                errors.append("%s: %s must be a string on one line" % (label, field))
        # The provider's resolver sends its queries from the veth's IPv4 address into the namespace.
        if item.get("dns_upstreams") is not None:
            upstreams = _addresses(item["dns_upstreams"], "%s: dns_upstreams" % label, errors, version=4)
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
                "has_auth": bool(item.get("username")),
                "dns_upstreams": upstreams,
            }
        )
    return out


def _records(raw, errors):
    if not isinstance(raw, list):
        errors.append("splitroute_gateway_dns_records must be a list")
        return []
    out = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - _RECORD_KEYS:
            errors.append("DNS record #%d must be a dict with keys name and address" % index)
            continue
        name = item.get("name")
        if not isinstance(name, str) or not _DNS_NAME.match(name):
            errors.append("DNS record #%d: name %r is not a DNS name" % (index, name))
            continue
        try:
            addr = ipaddress.ip_address(str(item.get("address")))
        except ValueError:
            errors.append("DNS record %s: address %r is not an IP address" % (name, item.get("address")))
            continue
        out.append({"name": name.rstrip("."), "address": str(addr)})
    return out


def _endpoint(value, errors, needed_by):
    """The endpoint host given to unmanaged peers: an IP address or a DNS name, as written in Endpoint =."""
    if value in (None, ""):
        if needed_by:
            errors.append(
                "splitroute_gateway_endpoint (the gateway's public address or name) is needed by the peers"
                " without public_key: %s" % ", ".join(needed_by)
            )
        return None
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        if isinstance(value, str) and _DNS_NAME.match(value):
            return value
        errors.append("splitroute_gateway_endpoint %r is neither an IP address nor a DNS name" % (value,))
        return None
    return "[%s]" % addr if addr.version == 6 else str(addr)


def _settings(settings, errors):
    """Role-wide values that reach configuration files."""
    for field, what in (("interface", "splitroute_gateway_interface"), ("uplink", "splitroute_gateway_uplink")):
        if field in settings:
            err = check_ifname(settings[field], what)
            if err:
                errors.append(err)
    port = _int(settings.get("port"), 51820)
    if port is None or not 0 < port < 65536:
        errors.append("splitroute_gateway_port must be 1-65535")
    mtu = _int(settings.get("mtu"), 1420)
    if mtu is None or not 576 <= mtu <= 65535:
        errors.append("splitroute_gateway_mtu must be 576-65535")
    endpoint_port = _int(settings.get("endpoint_port"), 0)
    if endpoint_port is None or not 0 <= endpoint_port < 65536:
        errors.append("splitroute_gateway_endpoint_port must be 0 (the listen port) or 1-65535")
        endpoint_port = 0
    keepalive = _int(settings.get("keepalive"), 25)
    if keepalive is None or not 0 <= keepalive < 65536:
        errors.append("splitroute_gateway_peer_keepalive must be 0 (off) or 1-65535 seconds")
    dns_port_base = _int(settings.get("dns_port_base"), 5300)
    if dns_port_base is None or not 1024 <= dns_port_base < 65536:
        errors.append("splitroute_gateway_dns_port_base must be 1024-65535")
        dns_port_base = None
    return {
        "port": port,
        "endpoint_port": endpoint_port or port,
        "dns_port_base": dns_port_base,
        "keepalive": keepalive,
    }


def _address6(item, label, v6, exit_, errors):
    """A peer's IPv6 address: in the IPv6 subnet, in a class with the same exit as its IPv4 address."""
    value = item.get("address6")
    if value in (None, ""):
        return None
    if v6 is None:
        errors.append("%s: address6 needs splitroute_gateway_address6 (the gateway's IPv6 address)" % label)
        return None
    try:
        addr = ipaddress.IPv6Address(str(value).split("/", maxsplit=1)[0])
    except ValueError:
        errors.append("%s: address6 must be an IPv6 address, got %r" % (label, value))
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


def _peers(peers, subnet, iface, ranges, errors, v6=None, keys_needed=True):
    out_peers = []
    seen_keys, seen_addrs = {}, {}
    names = "name must be letters, digits, '.', '_' or '-'"
    for _index, item, name, label in _entries(peers, "peer", _PEER_KEYS, _PEER_NAME, names, errors):
        key = item.get("public_key")
        managed = key not in (None, "")
        if not managed:
            key = None
        elif not keys_needed:
            key = None  # state absent: removing the gateway needs no peer key
        elif not _key(key):
            errors.append("%s: public_key is not a WireGuard key (base64 of 32 bytes)" % label)
        elif key in seen_keys:
            errors.append("%s: public_key is the same as peer %s's" % (label, seen_keys[key]))
        else:
            seen_keys[key] = name
        psk = item.get("preshared_key") or ""
        if not keys_needed:
            psk = ""
        if psk and not _key(psk):
            errors.append("%s: preshared_key is not a WireGuard key" % label)
        allowed = []
        if item.get("allowed_ips") is not None:
            if managed:
                errors.append(
                    "%s: allowed_ips is only for peers without public_key (their client configuration)" % label
                )
            elif not isinstance(item["allowed_ips"], list) or not item["allowed_ips"]:
                errors.append("%s: allowed_ips must be a non-empty list of networks" % label)
            else:
                for value in item["allowed_ips"]:
                    net = _net(value)
                    if net is None:
                        errors.append(
                            "%s: allowed_ips %r is not a network in CIDR form (host bits zero)" % (label, value)
                        )
                    else:
                        allowed.append(str(net))
        elif not managed:
            allowed = ["0.0.0.0/0", "::/0"] if item.get("address6") not in (None, "") else ["0.0.0.0/0"]
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
        addr6 = _address6(item, label, v6, exit_, errors)
        if addr6 is not None:
            if addr6 in seen_addrs:
                errors.append("%s: address6 %s is peer %s's too" % (label, addr6, seen_addrs[addr6]))
            seen_addrs[addr6] = name
        out_peers.append(
            {
                "name": name,
                "public_key": key,
                "preshared_key": psk,
                "address": str(addr),
                "address6": str(addr6) if addr6 is not None else None,
                "exit": exit_,
                "managed": managed,
                "allowed_ips": allowed,
            }
        )
    return out_peers


def _ipv6(settings, subnet, errors):
    """The IPv6 side (None when splitroute_gateway_address6 is empty): the gateway's address and the veth network."""
    value = settings.get("address6")
    if value in (None, ""):
        return None
    try:
        if "/" not in str(value):
            raise ValueError
        iface = ipaddress.IPv6Interface(str(value))
    except ValueError:
        errors.append("splitroute_gateway_address6 must be an IPv6 ADDRESS/PREFIX, got %r" % (value,))
        return None
    if iface.network.prefixlen > 120:
        errors.append("splitroute_gateway_address6's prefix must be /120 or shorter")
    veth = _net(settings.get("veth_network6", "fd00:255:255::/64"))
    if veth is None or veth.version != 6 or veth.prefixlen > 126 or veth.overlaps(iface.network):
        errors.append(
            "splitroute_gateway_veth_network6 must be an IPv6 network (/126 or shorter) outside the peer subnet"
        )
        veth = None
    return {"iface": iface, "veth_network": veth, "ranges": []}


def _range6(item, label, exit_, v6, errors):
    value = item.get("range6")
    if value in (None, ""):
        return
    if v6 is None:
        errors.append("%s: range6 needs splitroute_gateway_address6 (the gateway's IPv6 address)" % label)
        return
    net = _net(value)
    if net is None or net.version != 6:
        errors.append("%s: range6 must be an IPv6 network in CIDR form (host bits zero)" % label)
        return
    if not net.subnet_of(v6["iface"].network):
        errors.append("%s: range6 %s is outside the IPv6 peer subnet %s" % (label, net, v6["iface"].network))
    for other, _exit in v6["ranges"]:
        if net.overlaps(other):
            errors.append("%s: range6 %s overlaps range6 %s" % (label, net, other))
    v6["ranges"].append((net, exit_))


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
    v6 = _ipv6(settings, subnet, errors)
    table_base = int(settings.get("table_base", 200))
    priority_base = int(settings.get("priority_base", 2000))
    veth_net = _net(settings.get("veth_network", "10.255.255.0/24"))
    if veth_net is None or veth_net.version != 4 or veth_net.overlaps(subnet):
        errors.append("splitroute_gateway_veth_network must be an IPv4 network outside the peer subnet")
    err = check_program(settings.get("wireguard_userspace"), "splitroute_gateway_wireguard_userspace")
    if err:
        errors.append(err)
    role = _settings(settings, errors)
    local = []
    for item in settings.get("local_networks") or []:
        net = _net(item)
        if net is None or net.version != 4:
            errors.append("local network %r is not an IPv4 network in CIDR form (host bits zero)" % item)
        else:
            local.append(str(net))
    upstreams = _addresses(settings.get("dns_upstreams", ["9.9.9.9"]), "splitroute_gateway_dns_upstreams", errors)
    if not upstreams:
        errors.append("splitroute_gateway_dns_upstreams must name at least one resolver")
    records = _records(settings.get("dns_records") or [], errors)

    prov = _providers(providers, upstreams, errors)
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
        _range6(item, label, exit_, v6, errors)

    keys_needed = settings.get("state", "present") != "absent"
    out_peers = _peers(peers, subnet, iface, ranges, errors, v6, keys_needed=keys_needed)
    endpoint = _endpoint(settings.get("endpoint"), errors, [p["name"] for p in out_peers if not p["managed"]])

    veths = list(veth_net.subnets(new_prefix=30)) if veth_net is not None and veth_net.prefixlen <= 30 else []
    if len(prov) > len(veths):
        errors.append("splitroute_gateway_veth_network is too small for %d providers (a /30 each)" % len(prov))
    if role["dns_port_base"] is not None and prov:
        last = role["dns_port_base"] + len(prov) - 1
        if last > 65535 or role["dns_port_base"] <= 53 <= last:
            errors.append("splitroute_gateway_dns_port_base leaves no room for %d resolver ports" % len(prov))
    veths6 = []
    if v6 is not None and v6["veth_network"] is not None:
        veths6 = list(itertools.islice(v6["veth_network"].subnets(new_prefix=126), len(prov)))
        if len(prov) > len(veths6):
            errors.append("splitroute_gateway_veth_network6 is too small for %d providers (a /126 each)" % len(prov))
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
                "dns_port": role["dns_port_base"] + index,
            }
        )
        if v6 is not None:
            hosts6 = list(veths6[index].hosts())
            p.update(
                {
                    "veth_network6": str(veths6[index]),
                    "host_address6": str(hosts6[0]),
                    "ns_address6": str(hosts6[1]),
                    "ranges6": [str(net) for net, e in v6["ranges"] if e == p["name"]],
                }
            )
    return {
        "address": str(iface),
        "ip": str(iface.ip),
        "subnet": str(subnet),
        "local_networks": local,
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
    }


def _clamp(raw):
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def gateway_genkey(_value=None):
    """A new WireGuard private key (base64 of 32 random bytes, clamped as `wg genkey` does)."""
    return base64.b64encode(_clamp(secrets.token_bytes(32))).decode("ascii")


def gateway_pubkey(private_key):
    """The WireGuard public key (X25519) of a base64 private key, as `wg pubkey` prints it."""
    if X25519PrivateKey is None:
        raise AnsibleFilterError("gateway_pubkey needs the Python library cryptography on the controller")
    if not _key(private_key):
        # never echo the value: it is a secret
        raise AnsibleFilterError("gateway_pubkey: the input is not a WireGuard private key (base64 of 32 bytes)")
    raw = base64.b64decode(private_key)
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    encoded = public.public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    return base64.b64encode(encoded).decode("ascii")


class FilterModule:
    def filters(self):
        return {"gateway_plan": gateway_plan, "gateway_genkey": gateway_genkey, "gateway_pubkey": gateway_pubkey}
