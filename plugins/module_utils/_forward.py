# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Forwarded traffic (the client's `forward`): a LAN behind the client acting as its router, the containers and
VMs on the client host. The settings, checked, and what the nftables table and the front resolver get from them.
Pure: no I/O.

Traffic the host forwards is taken (the table's prerouting chain) when it comes in on one of `interfaces` (a
name, or a prefix with a trailing `*`: `docker*`, `br-*`, `virbr*`, so bridges made after the role ran are
taken too), from one of `sources` (networks, on any interface), or from the source of a `policies` entry.
Taken traffic follows the rules of the host's own (client.nft.j2): new connections to a tunnel's set members,
networks and ports get its mark (masked: the bits of `fwmark_mask` only) and keep it (ct mark), so the
tunnel's table routes them, its blackhole behind; the tunnels masquerade it. Left alone: traffic to the host
itself, and what a policy excludes. A policy can instead send everything of a source (an address, a network,
a MAC address) through a tunnel but to `local_networks` (the private ranges by default): pbr's "this TV by
the VPN". With `dns` (the default) the front resolver also answers on the interfaces (dnsmasq's
`bind-dynamic`: bridges that appear later too) and their port-53 traffic to anywhere else, UDP and TCP, is
redirected to it, so their listed names fill the sets and go to the tunnel's resolver.
"""

from __future__ import annotations

import re

from ansible_collections.splitroute.vpn.plugins.module_utils import _names
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    parse_network,
    want_bool,
    want_dict,
    want_list,
)

# an interface name (_validate.check_ifname's characters), optionally a prefix: a trailing * (nftables' and
# dnsmasq's wildcard)
_PATTERN = re.compile(r"[A-Za-z0-9_.+-]{1,15}\*?|[A-Za-z0-9_.+-]{0,14}\*")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# the destinations a whole-source policy leaves to the main table: the host's own networks and its neighbours'
LOCAL_DEFAULT = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "fc00::/7", "fe80::/10",
)  # fmt: skip
DEFAULTS = {
    "interfaces": [],
    "sources": [],
    "dns": True,
    "local_networks": list(LOCAL_DEFAULT),
    "policies": [],
}
_POLICY_KNOWN = ("source", "tunnel", "exclude")


def _source(value, what, errors):
    """A policy's source: ('mac', 'aa:bb:..') or (4|6, 'network')."""
    if isinstance(value, str) and _MAC.fullmatch(value.lower()):
        return "mac", value.lower()
    net, error = parse_network(value, what=what)
    if error:
        errors.append("%s (or a MAC address, aa:bb:cc:dd:ee:ff)" % error)
        return None, None
    return net.version, str(net)


def _networks(raw, what, errors):
    values, error = want_list(raw, what)
    if error:
        errors.append(error)
        return {4: [], 6: []}
    out = {4: [], 6: []}
    for index, value in enumerate(values):
        net, error = parse_network(value, what="%s[%d]" % (what, index))
        if error:
            errors.append(error)
        elif str(net) not in out[net.version]:
            out[net.version].append(str(net))
    return out


def settings(raw, what):
    """(the checked settings, errors) of the variable WHAT (None: nothing forwarded is taken). The policies'
    tunnels are checked against the tunnels by the plan (check_tunnels)."""
    errors = []
    raw, error = want_dict({} if raw is None else raw, what)
    if error:
        return settings(None, what)[0], [error]
    unknown = sorted(map(str, set(raw) - set(DEFAULTS)))
    if unknown:
        errors.append("%s: unknown keys %s (known: %s)" % (what, ", ".join(unknown), ", ".join(DEFAULTS)))
    out = {"interfaces": []}
    values, error = want_list(raw.get("interfaces", []), what + ".interfaces")
    errors.extend([error] if error else [])
    for index, name in enumerate(values or []):
        if not isinstance(name, str) or not _PATTERN.fullmatch(name) or name in (".", "..", "*"):
            errors.append(
                "%s.interfaces[%d]: %r is not an interface name (1-15 characters from A-Z a-z 0-9 _ . + -) or a "
                "prefix of one with a trailing * (docker*)" % (what, index, name)
            )
        elif name == "lo":
            errors.append("%s.interfaces[%d]: lo is the host's own traffic (always steered)" % (what, index))
        elif name not in out["interfaces"]:
            out["interfaces"].append(name)
    sources = _networks(raw.get("sources", []), what + ".sources", errors)
    out["sources4"], out["sources6"] = sources[4], sources[6]
    value, error = want_bool(raw.get("dns", True), what + ".dns")
    errors.extend([error] if error else [])
    out["dns"] = bool(value)
    local = _networks(raw.get("local_networks", DEFAULTS["local_networks"]), what + ".local_networks", errors)
    out["local4"], out["local6"] = local[4], local[6]
    out["policies"] = []
    values, error = want_list(raw.get("policies", []), what + ".policies")
    errors.extend([error] if error else [])
    for index, raw_item in enumerate(values or []):
        where = "%s.policies[%d]" % (what, index)
        item, error = want_dict(raw_item, where)
        if error:
            errors.append(error)
            continue
        unknown = sorted(map(str, set(item) - set(_POLICY_KNOWN)))
        if unknown:
            errors.append("%s: unknown keys %s (known: %s)" % (where, ", ".join(unknown), ", ".join(_POLICY_KNOWN)))
        kind, source = _source(item.get("source"), where + ".source", errors)
        exclude, error = want_bool(item.get("exclude", False), where + ".exclude")
        errors.extend([error] if error else [])
        tunnel = item.get("tunnel")
        if bool(exclude) == (tunnel is not None):
            errors.append("%s: give either tunnel (everything of the source by it) or exclude: true" % where)
        elif tunnel is not None and not isinstance(tunnel, str):
            errors.append("%s.tunnel: must be a tunnel's name, not %r" % (where, tunnel))
        elif source is not None:
            out["policies"].append({"where": where, "kind": kind, "source": source, "tunnel": tunnel,
                                    "exclude": bool(exclude)})  # fmt: skip
    seen = {}
    for policy in out["policies"]:
        if policy["source"] in seen:
            errors.append("%s: %s is already in %s" % (policy["where"], policy["source"], seen[policy["source"]]))
        seen[policy["source"]] = policy["where"]
    return out, errors


def check_tunnels(checked, tunnels):
    """The errors of CHECKED's policies against TUNNELS (the tunnels' plans): each names one of them (a
    tunnel without the source's family blackholes that family: its table has nothing else)."""
    errors = []
    by_name = {t["name"]: t for t in tunnels}
    for policy in checked["policies"]:
        if policy["tunnel"] is None:
            continue
        tunnel = by_name.get(policy["tunnel"])
        if tunnel is None:
            errors.append("%s.tunnel: no tunnel is named %s" % (policy["where"], policy["tunnel"]))
    return errors


def plan(checked, tunnels, mask):
    """What the nftables table and the front resolver take from CHECKED (settings()) for TUNNELS (the
    tunnels' plans) with the role's marks in the bits of MASK: whether anything is taken, the interfaces and
    source networks, per family, the excluded and whole-source sources (per tunnel: its mark), the local
    networks a whole-source policy leaves alone, whether DNS is answered and redirected."""
    marks = {t["name"]: t["fwmark"] for t in tunnels}
    exclude = {"4": [], "6": [], "mac": []}
    whole = []
    for policy in checked["policies"]:
        family = str(policy["kind"])
        if policy["exclude"]:
            exclude[family].append(policy["source"])
            continue
        entry = next((w for w in whole if w["tunnel"] == policy["tunnel"]), None)
        if entry is None:
            fwmark = marks.get(policy["tunnel"]) or 0
            entry = {
                "tunnel": policy["tunnel"],
                "mark": _names.mark_statement(fwmark, mask),
                "4": [],
                "6": [],
                "mac": [],
            }
            whole.append(entry)
        entry[family].append(policy["source"])
    enabled = bool(checked["interfaces"] or checked["sources4"] or checked["sources6"] or whole)
    return {
        "enabled": enabled,
        "interfaces": list(checked["interfaces"]),
        # forwarded traffic is taken from these (and from the whole-source policies' sources)
        "sources4": list(checked["sources4"]) + [s for w in whole for s in w["4"]],
        "sources6": list(checked["sources6"]) + [s for w in whole for s in w["6"]],
        "sources_mac": [s for w in whole for s in w["mac"]],
        "exclude4": exclude["4"],
        "exclude6": exclude["6"],
        "exclude_mac": exclude["mac"],
        "whole": whole,
        "local4": list(checked["local4"]),
        "local6": list(checked["local6"]),
        "dns": enabled and checked["dns"] and bool(checked["interfaces"]),
    }
