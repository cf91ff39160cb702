# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The collection's naming conventions, in one place: nftables table and set names, unit
names, the numbers a tunnel gets by its position, and the paths the roles write.

client_plan (on the controller) and the host program (_host_client, no ansible on the host)
both import these, so a name is spelled once. Nothing here imports ansible.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------- common
ETC = "/etc/splitroute"
RUN = "/run/splitroute"
SYSTEMD = "/etc/systemd/system"
SYSTEMD_ETC = "/etc/systemd"  # the root of the roles' file tree of units and drop-ins
NETWORKD_DROPIN = SYSTEMD_ETC + "/networkd.conf.d/splitroute.conf"
RESOLVED_DROPIN = SYSTEMD_ETC + "/resolved.conf.d/splitroute.conf"
# systemd-resolved: its stub's address, the file of the uplink resolvers it knows (per link, from
# NetworkManager or networkd, rewritten when they change) and the user it sends its queries as
RESOLVED_STUB = "127.0.0.53"
RESOLVED_UPLINK_RESOLV = "/run/systemd/resolve/resolv.conf"
RESOLVED_USER = "systemd-resolve"
WIREGUARD = "/etc/wireguard"
NFT_TABLE = "splitroute"  # table inet splitroute
METRIC_PREFIX = "splitroute_"

# ---------------------------------------------------------------- client
CLIENT_PLAN = ETC + "/client.json"  # _host.plan_path("client")
CLIENT_NFT_FILE = ETC + "/client.nft"
CLIENT_DNS_DIR = ETC + "/dns"
CLIENT_FRONT_CONF = CLIENT_DNS_DIR + "/front.conf"
CLIENT_FRONT_SERVERS = CLIENT_DNS_DIR + "/front-servers.conf"
# the listed domains the front loads at start (a conf-file: its servers-file holds the changes since)
CLIENT_FRONT_BASE = CLIENT_DNS_DIR + "/front-base.conf"
CLIENT_RESOLV_BACKUP = ETC + "/resolv.conf.orig"
# where the front resolver answers (resolv.conf names them; resolved forwards to the first)
CLIENT_FRONT_ADDRESSES = ("127.0.0.1", "::1")
CLIENT_ROTATE_STATE = RUN + "/client-rotate.json"
# splitroute health's state (exits' health, the exit each failover group uses) and the servers-files it
# writes for the groups' back resolvers (back-NAME-servers.conf)
CLIENT_HEALTH_STATE = RUN + "/client-health.json"
CLIENT_RUN_DNS_DIR = RUN + "/dns"
# a tunnel's default route in its table (the blackhole behind it has BLACKHOLE_METRIC)
EXIT_METRIC = 10
# the last good copies of the lists the host fetches or reads, and their states (_host_lists)
CLIENT_LISTS_DIR = "/var/lib/splitroute/client-lists"
# the boot shell script of releases before the host program (removed when found)
CLIENT_LEGACY_ROUTING_SCRIPT = "/usr/local/sbin/splitroute-client-routing"

# everything of the client's under /etc/splitroute and the legacy script (state absent removes them)
CLIENT_FILES = (
    CLIENT_PLAN,
    CLIENT_NFT_FILE,
    CLIENT_DNS_DIR,
    CLIENT_RESOLV_BACKUP,
    ETC + "/resolv.conf.link",
    CLIENT_LEGACY_ROUTING_SCRIPT,
    CLIENT_LISTS_DIR,
)

CLIENT_UNIT = "splitroute-client.service"
FRONT_UNIT = "splitroute-dns-front.service"
BACK_TEMPLATE_UNIT = "splitroute-dns-back@.service"
ROTATE_UNIT = "splitroute-client-rotate.service"
ROTATE_TIMER = "splitroute-client-rotate.timer"
LISTS_UNIT = "splitroute-client-lists.service"
LISTS_TIMER = "splitroute-client-lists.timer"
PRERESOLVE_UNIT = "splitroute-client-preresolve.service"
HEALTH_UNIT = "splitroute-client-health.service"
# the unit files the client role installs (templates of the same name + .j2)
CLIENT_UNIT_FILES = (
    CLIENT_UNIT, FRONT_UNIT, BACK_TEMPLATE_UNIT, ROTATE_UNIT, ROTATE_TIMER, LISTS_UNIT, LISTS_TIMER, PRERESOLVE_UNIT,
    HEALTH_UNIT,
)  # fmt: skip

# stopped first on removal (then the back resolvers, then the table unit)
CLIENT_STOP_FIRST = (HEALTH_UNIT, LISTS_TIMER, LISTS_UNIT, PRERESOLVE_UNIT, ROTATE_TIMER, ROTATE_UNIT, FRONT_UNIT)

# The two generations of every set dnsmasq fills: both filled by every answer, flushed
# alternately by `splitroute rotate` (see _host_client).
GENERATIONS = ("a", "b")
FAMILIES = (4, 6)

# tunnel N (0-based, in inventory order) gets these unless it gives its own
FWMARK_FIRST = 1
PRIORITY_STEP = 10
# the bits of the packet and conntrack marks the client role owns (splitroute_client_fwmark_mask): its marks
# are set into them and the rest is kept (Docker, Tailscale, firewalld and others have marks of their own)
FWMARK_MASK = 0xFF
# the role owns rules at priority_base .. +99 and clears tables table_base .. +9 on removal
SCOPE_TABLES = 10
SCOPE_PRIORITIES = 100


def mark_statement(fwmark, mask, conntrack=True):
    """The nftables statements that give a packet (and, with CONNTRACK, its connection) the mark FWMARK in
    the bits of MASK, keeping the other bits (client.nft.j2's output and prerouting chains)."""
    keep = 0xFFFFFFFF & ~mask
    out = "meta mark set meta mark & %#x | %#x" % (keep, fwmark)
    return out + (" ct mark set ct mark & %#x | %#x" % (keep, fwmark) if conntrack else "")


def dns_sets(tunnel, family):
    """The sets dnsmasq fills for TUNNEL and FAMILY (4 or 6), one per generation: wg0_v4_a, wg0_v4_b."""
    return ["%s_v%d_%s" % (tunnel, family, gen) for gen in GENERATIONS]


def net_set(tunnel, family):
    """The static (interval) set of TUNNEL's networks: wg0_net4."""
    return "%s_net%d" % (tunnel, family)


def src_set(tunnel, family):
    """The (interval) set of the networks TUNNEL's sources carry, filled by `splitroute apply`: wg0_src4."""
    return "%s_src%d" % (tunnel, family)


def tunnel_sets(tunnel):
    """Every set of TUNNEL in the client's table."""
    return (
        dns_sets(tunnel, 4)
        + dns_sets(tunnel, 6)
        + [net_set(tunnel, 4), net_set(tunnel, 6), src_set(tunnel, 4), src_set(tunnel, 6)]
    )


# the longest suffix a tunnel's set names get (client_plan checks NAME + this is an nft name)
LONGEST_SET_SUFFIX = "_v4_a"
_SET_NAME = re.compile(r"^(?P<tunnel>.+)_(?:(?P<dns>v[46])_(?P<gen>[ab])|(?P<net>(?:net|src)[46]))$")


def parse_set_name(name):
    """(tunnel, kind, generation) of one of the client's set names, kind v4/v6/net4/net6/src4/src6 and
    generation a/b or None; None when NAME is not one of them."""
    match = _SET_NAME.match(name)
    if not match:
        return None
    if match.group("dns"):
        return match.group("tunnel"), match.group("dns"), match.group("gen")
    return match.group("tunnel"), match.group("net"), None


def back_unit(tunnel):
    return "splitroute-dns-back@%s.service" % tunnel


def wg_unit(tunnel):
    return "wg-quick@%s.service" % tunnel


def wg_dropin_dir(tunnel):
    return "%s/wg-quick@%s.service.d" % (SYSTEMD, tunnel)


def wg_dropin(tunnel):
    """The client's drop-in for TUNNEL's wg-quick unit (its start after the table and resolvers)."""
    return wg_dropin_dir(tunnel) + "/splitroute.conf"


def wg_files(tunnel):
    return ["%s/%s.conf" % (WIREGUARD, tunnel), "%s/%s.key" % (WIREGUARD, tunnel)]


def wg_triggers(conf, dropin):
    """A wg-quick unit's triggers: restarted when its drop-in changed (it repeats the [Interface] lines of
    the configuration as comments: a new address, port or MTU restarts the interface), reloaded when only
    the configuration did: its peers, applied by `splitroute wg-sync` (the drop-in's ExecReload), every other
    peer's session and handshake untouched."""
    return {"restart": [dropin], "reload": [conf]}


def client_unit_triggers(tunnels, with_dns):
    """Unit -> {"restart": [paths], "reload": [paths]}: the files each of the client's units reads,
    so a run that changed one restarts (reloads) the unit. The table unit is only started: its
    boot step is what the role does itself in the same run."""
    out = {
        FRONT_UNIT: {"restart": [CLIENT_FRONT_CONF, SYSTEMD + "/" + FRONT_UNIT]},
        ROTATE_TIMER: {"restart": [SYSTEMD + "/" + ROTATE_TIMER, SYSTEMD + "/" + ROTATE_UNIT]},
        LISTS_TIMER: {"restart": [SYSTEMD + "/" + LISTS_TIMER, SYSTEMD + "/" + LISTS_UNIT]},
        PRERESOLVE_UNIT: {"restart": [SYSTEMD + "/" + PRERESOLVE_UNIT]},
        # it reads the plan once, at start
        HEALTH_UNIT: {"restart": [CLIENT_PLAN, SYSTEMD + "/" + HEALTH_UNIT]},
    }
    for name in with_dns:
        out[back_unit(name)] = {"restart": back_files(name) + [SYSTEMD + "/" + BACK_TEMPLATE_UNIT]}
    for name in tunnels:
        out[wg_unit(name)] = wg_triggers(wg_files(name)[0], wg_dropin(name))
    return out


def tree_file(root, path, template, **extra):
    """An entry of a plan's file tree: PATH (absolute, under ROOT) as the name file_tree takes,
    relative to ROOT, rendered from the role's TEMPLATE (EXTRA: tunnel, the tunnel the template
    renders as `item`; unit, a unit that must be installed for the file to be written)."""
    if not path.startswith(root + "/"):
        raise ValueError("%s is not under %s" % (path, root))
    return dict({"name": path[len(root) + 1 :], "template": template}, **extra)


def back_files(tunnel):
    """The back resolver's configuration and its nftset line."""
    return ["%s/back-%s.conf" % (CLIENT_DNS_DIR, tunnel), "%s/back-%s-nftset.conf" % (CLIENT_DNS_DIR, tunnel)]


# the owner of the dns_bypass DoH lists among the lists the host keeps current (where a tunnel's name is)
DNS_BYPASS_SOURCES = "dns-bypass"
# the sets of the DoH resolvers' addresses (the client's table, client.nft.j2), and all of dns_bypass's sets
BYPASS_DOH_SETS = {4: "bypass_doh4", 6: "bypass_doh6"}
BYPASS_SETS = ("bypass_doh4", "bypass_doh6", "bypass_dot_allow4", "bypass_dot_allow6")


def back_servers_file(tunnel):
    """The servers-file of a failover group's back resolver: the DNS servers of the exit in use."""
    return "%s/back-%s-servers.conf" % (CLIENT_RUN_DNS_DIR, tunnel)


def probe_routes(exit_):
    """The host routes a failover exit's probes take (by the exit's mark, in the exit's table): each target
    through the exit's interface, whatever exit the table's default route names."""
    if exit_.get("netns"):  # a gateway's provider: its probes are sent inside its namespace
        return []
    return [
        {
            "table": exit_["table"],
            "dest": "%s/%d" % (target, 128 if ":" in target else 32),
            "dev": exit_["interface"],
            "family": "6" if ":" in target else "4",
            "metric": EXIT_METRIC,
        }
        for target in exit_["targets"]
    ]


def tunnel_numbers(index, table_base, priority_base, back_port):
    """The defaults of tunnel INDEX: fwmark, routing table, rule priority, back resolver port
    (None where its base is None)."""

    def plus(base, step):
        return None if base is None else base + step * index

    return {
        "fwmark": FWMARK_FIRST + index,
        "table": plus(table_base, 1),
        "priority": plus(priority_base, PRIORITY_STEP),
        "back_port": plus(back_port, 1),
    }


# ---------------------------------------------------------------- gateway
GATEWAY_PLAN = ETC + "/gateway.json"  # _host.plan_path("gateway")
GATEWAY_ETC = "/etc/splitroute-gateway"
GATEWAY_NFT_TABLE = "splitroute_gateway"  # table inet splitroute_gateway, and table ip in each namespace
GATEWAY_NFT_FILE = GATEWAY_ETC + "/gateway.nft"
GATEWAY_SYSCTL_FILE = "/etc/sysctl.d/60-splitroute-gateway.conf"
GATEWAY_STATE_DIR = "/var/lib/splitroute-gateway"
# the boot shell script of releases before the host program (removed when found)
GATEWAY_LEGACY_BOOT_SCRIPT = "/usr/local/sbin/splitroute-gateway-boot"

GATEWAY_UNIT = "splitroute-gateway.service"
GATEWAY_DNS_UNIT = "splitroute-gateway-dns.service"
# splitroute health: the failover of the providers that have a fallback
GATEWAY_HEALTH_UNIT = "splitroute-gateway-health.service"
OPENVPN_TEMPLATE_UNIT = "splitroute-gateway-openvpn@.service"
PROVIDER_DNS_TEMPLATE_UNIT = "splitroute-gateway-dns@.service"
# the unit files the gateway role installs (templates of the same name + .j2)
GATEWAY_UNIT_FILES = (
    GATEWAY_UNIT, OPENVPN_TEMPLATE_UNIT, GATEWAY_DNS_UNIT, PROVIDER_DNS_TEMPLATE_UNIT, GATEWAY_HEALTH_UNIT
)  # fmt: skip

# a provider's veth pair: srgw-NAME on the host, srgw0 in its namespace srgw-NAME
PROVIDER_PREFIX = "srgw-"
PROVIDER_NS_VETH = "srgw0"
# the veth pair's prefix lengths (one /30, one /126 of the veth networks per provider)
VETH_PREFIX4 = 30
VETH_PREFIX6 = 126
# a provider table's route into the namespace, and the blackhole behind it (fail-closed)
PROVIDER_ROUTE_METRIC = 10
BLACKHOLE_METRIC = 100


def provider_netns(provider):
    return PROVIDER_PREFIX + provider


def provider_host_veth(provider):
    return PROVIDER_PREFIX + provider


def openvpn_unit(provider):
    return "splitroute-gateway-openvpn@%s.service" % provider


def provider_dns_unit(provider):
    return "splitroute-gateway-dns@%s.service" % provider


def provider_netns_nft_file(provider):
    """The nftables table file loaded inside the provider's namespace."""
    return "%s/netns-%s.nft" % (GATEWAY_ETC, provider)


def provider_profile(provider):
    """The provider's OpenVPN profile (its credentials next to it, .auth)."""
    return "%s/openvpn/%s.conf" % (GATEWAY_ETC, provider)


def provider_auth(provider):
    """The provider's OpenVPN credentials (user name and password, next to its profile)."""
    return "%s/openvpn/%s.auth" % (GATEWAY_ETC, provider)


def provider_dns_conf(provider):
    """The configuration of the provider's resolver (in the host namespace, asking through the provider)."""
    return "%s/dnsmasq-%s.conf" % (GATEWAY_ETC, provider)


GATEWAY_DNS_CONF = GATEWAY_ETC + "/dnsmasq.conf"
GATEWAY_OPENVPN_DIR = GATEWAY_ETC + "/openvpn"

# the gateway's failover (a provider with a fallback): splitroute health's state, and the
# servers-file each such provider's resolver reads (the DNS servers of the provider in use)
GATEWAY_HEALTH_STATE = RUN + "/gateway-health.json"
GATEWAY_RUN_DNS_DIR = RUN + "/gateway-dns"
# OpenVPN's tunnel device in a provider's namespace (tun0, tun1...: netns.nft matches tun*)
PROVIDER_TUNNEL_PREFIX = "tun"


def provider_servers_file(provider):
    """The servers-file of a provider's resolver when the provider has a fallback."""
    return "%s/%s-servers.conf" % (GATEWAY_RUN_DNS_DIR, provider)


def gateway_wg_dropin(interface):
    return "%s/wg-quick@%s.service.d/splitroute-gateway.conf" % (SYSTEMD, interface)


def provider_files(provider):
    """The provider's files: its namespace's nftables table, OpenVPN profile and credentials and
    resolver configuration (the namespace's resolv.conf goes with the namespace, netns_veth)."""
    return [
        provider_netns_nft_file(provider),
        provider_profile(provider),
        provider_auth(provider),
        provider_dns_conf(provider),
    ]


_PROVIDER_FILE = re.compile(
    r"^(?:.*/)?(?:netns-(?P<nft>[a-z][a-z0-9]{0,9})\.nft|openvpn/(?P<conf>[a-z][a-z0-9]{0,9})\.conf)\Z"
)


def provider_of_file(path):
    """The provider whose namespace table (DIR/netns-NAME.nft) or OpenVPN profile
    (DIR/openvpn/NAME.conf) PATH is, or None (NAME: a provider name as gateway_plan allows it)."""
    match = _PROVIDER_FILE.match(path) if isinstance(path, str) else None
    return (match.group("nft") or match.group("conf")) if match else None
