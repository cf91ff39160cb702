# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""DNS that applications cannot go around (the client's `dns_bypass`): the settings, checked, and what the
nftables table and the resolvers get from them. Pure: no I/O.

Each part is off by default and has its own switch:
- dot: TCP and UDP port 853 (DNS over TLS, DNS over QUIC) to anywhere but the configured upstreams (and
  `dot_allow`) is rejected at once: a TCP reset, an ICMP port unreachable for UDP, so a client falls back to
  plain DNS (which the port-53 redirect sends to the front resolver) without waiting for a timeout;
- doh: TCP and UDP port 443 to known DNS-over-HTTPS resolvers (DOH_DEFAULT, unless `doh_default` is false,
  and `doh_addresses`) is rejected the same way;
- canaries: `use-application-dns.net` answers NXDOMAIN, so Firefox turns its own DoH off; `private_relay`
  adds `mask.icloud.com` and `mask-h2.icloud.com` (Apple: a network that must see DNS answers them so);
- https_records: the HTTPS and SVCB records of listed names are dropped from the answers (the back
  resolvers' `filter-rr`): their address hints would let a browser connect to an address no A or AAAA answer
  put into the tunnel's sets, so by the uplink;
- quic: UDP port 443 to the tunnels' destinations is rejected, for users who prefer TCP through the tunnel
  (without it QUIC takes the tunnel as TCP does: the marks are by address).
Each block counts what it rejected (a named nftables counter; `splitroute status` and the metrics show them).
"""

from __future__ import annotations

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    parse_network,
    want_bool,
    want_dict,
    want_list,
)

# Well-known public DNS-over-HTTPS resolvers (their anycast addresses, IPv4 and IPv6), 2026. Not complete, and
# cannot be: a resolver on a new address, or one run by a CDN on shared addresses, is only caught when it is
# listed (doh_addresses).
DOH_DEFAULT = (
    # Cloudflare (1.1.1.1, for families, security)
    "1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3",
    "2606:4700:4700::1111", "2606:4700:4700::1001", "2606:4700:4700::1112", "2606:4700:4700::1002",
    "2606:4700:4700::1113", "2606:4700:4700::1003",
    # Google Public DNS
    "8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844",
    # Quad9
    "9.9.9.9", "149.112.112.112", "9.9.9.10", "149.112.112.10", "9.9.9.11", "149.112.112.11",
    "2620:fe::fe", "2620:fe::9", "2620:fe::10", "2620:fe::fe:10", "2620:fe::11", "2620:fe::fe:11",
    # OpenDNS (Cisco Umbrella)
    "208.67.222.222", "208.67.220.220", "208.67.222.123", "208.67.220.123", "2620:119:35::35", "2620:119:53::53",
    # AdGuard DNS
    "94.140.14.14", "94.140.15.15", "94.140.14.15", "94.140.15.16", "94.140.14.140", "94.140.14.141",
    "2a10:50c0::ad1:ff", "2a10:50c0::ad2:ff", "2a10:50c0::bad1:ff", "2a10:50c0::bad2:ff",
    # CleanBrowsing
    "185.228.168.9", "185.228.169.9", "185.228.168.10", "185.228.169.11", "185.228.168.168", "185.228.169.168",
    "2a0d:2a00:1::2", "2a0d:2a00:2::2",
    # NextDNS (anycast ranges of its per-profile resolvers)
    "45.90.28.0/24", "45.90.30.0/24", "2a07:a8c0::/33", "2a07:a8c1::/33",
    # Mullvad DNS
    "194.242.2.2", "194.242.2.3", "194.242.2.4", "194.242.2.5", "194.242.2.6", "194.242.2.9",
    "2a07:e340::2", "2a07:e340::3", "2a07:e340::4", "2a07:e340::5", "2a07:e340::6", "2a07:e340::9",
    # Control D
    "76.76.2.0", "76.76.10.0", "2606:1a40::", "2606:1a40:1::",
    # DNS.SB
    "185.222.222.222", "45.11.45.11", "2a09::", "2a11::",
    # Alibaba, DNSPod (Tencent)
    "223.5.5.5", "223.6.6.6", "2400:3200::1", "2400:3200:baba::1", "1.12.12.12", "120.53.53.53",
)  # fmt: skip
CANARIES = ("use-application-dns.net",)
PRIVATE_RELAY = ("mask.icloud.com", "mask-h2.icloud.com")
# each refusing block counts into the named counter bypass_BLOCK of the role's table (the templates declare
# bypass_dot, bypass_doh, bypass_quic; status and the metrics read every counter named bypass_*)
DEFAULTS = {
    "dot": False,
    "dot_allow": [],
    "doh": False,
    "doh_default": True,
    "doh_addresses": [],
    # lists of DoH resolvers' addresses, URLs or files on the host, kept current by the lists mechanism
    # (_host_lists; checked by the client's plan as domain_sources are: the value here is what it made)
    "doh_sources": [],
    "canaries": False,
    "private_relay": False,
    "https_records": False,
    "quic": False,
}
_SWITCHES = ("dot", "doh", "doh_default", "canaries", "private_relay", "https_records", "quic")


def _networks(raw, what, errors):
    """(IPv4, IPv6) network strings of a list of addresses and networks, each checked."""
    values, error = want_list(raw, what)
    if error:
        errors.append(error)
        return [], []
    out = {4: [], 6: []}
    for index, value in enumerate(values):
        net, error = parse_network(value, what="%s[%d]" % (what, index))
        if error:
            errors.append(error)
        elif str(net) not in out[net.version]:
            out[net.version].append(str(net))
    return out[4], out[6]


def settings(raw, what):
    """(the checked settings, errors) of the variable WHAT (None: all off)."""
    errors = []
    raw, error = want_dict({} if raw is None else raw, what)
    if error:
        return dict(DEFAULTS), [error]
    unknown = sorted(map(str, set(raw) - set(DEFAULTS)))
    if unknown:
        errors.append("%s: unknown keys %s (known: %s)" % (what, ", ".join(unknown), ", ".join(DEFAULTS)))
    out = {}
    for key in _SWITCHES:
        value, error = want_bool(raw.get(key, DEFAULTS[key]), "%s.%s" % (what, key))
        if error:
            errors.append(error)
        out[key] = bool(value)
    for key in ("dot_allow", "doh_addresses"):
        out[key + "4"], out[key + "6"] = _networks(raw.get(key, DEFAULTS[key]), "%s.%s" % (what, key), errors)
    out["doh_sources"] = raw.get("doh_sources", DEFAULTS["doh_sources"])
    return out, errors


def plan(checked, upstreams=()):
    """What the nftables table and the resolvers take from CHECKED (settings()): the blocks that are on, the
    DoH resolvers' networks and the addresses DoT may still reach (the configured UPSTREAMS and dot_allow),
    per family, the names that answer NXDOMAIN, and whether listed names' HTTPS and SVCB records are dropped."""
    doh = {4: [], 6: []}
    if checked["doh"]:
        default = DOH_DEFAULT if checked["doh_default"] else ()
        for value in list(default) + checked["doh_addresses4"] + checked["doh_addresses6"]:
            net, _error = parse_network(value)
            if str(net) not in doh[net.version]:
                doh[net.version].append(str(net))
    allow = {4: list(checked["dot_allow4"]), 6: list(checked["dot_allow6"])}
    for value in upstreams:
        net, error = parse_network(value)
        if error is None and str(net) not in allow[net.version]:
            allow[net.version].append(str(net))
    names = (list(CANARIES) if checked["canaries"] else []) + (list(PRIVATE_RELAY) if checked["private_relay"] else [])
    return {
        "dot": checked["dot"],
        "doh": checked["doh"],
        "quic": checked["quic"],
        "https_records": checked["https_records"],
        "doh4": doh[4],
        "doh6": doh[6],
        # their networks join doh4/doh6 in the sets (`splitroute apply`); a domain in them is not an address
        "doh_sources": list(checked.get("doh_sources") or []) if checked["doh"] else [],
        "dot_allow4": allow[4] if checked["dot"] else [],
        "dot_allow6": allow[6] if checked["dot"] else [],
        "nxdomain": names,
        "any": any(checked[k] for k in ("dot", "doh", "quic")),
    }
