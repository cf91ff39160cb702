# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The gateway role's part of the host program (see _host.py): COMMANDS name -> fn(plan, args, log).

`splitroute --role gateway boot` (splitroute-gateway.service, before WireGuard and the OpenVPN
clients): turns on forwarding, loads the gateway's nftables table, makes each provider's
namespace and veth pair with its addresses, routes and sysctls (the role's netns_veth code),
loads the namespace's nftables table inside it, then sets the rules and each provider's table
(its default route into the namespace and a blackhole behind it, the role's policy_rule code).
Every step reads the plan and changes only what differs: a second boot changes nothing.

The pure parts (host_lists, prune) are imported by the gateway_plan filter too: the rule, route,
unit and namespace lists are computed once, into the plan the role renders to
/etc/splitroute/gateway.json, and the role's tasks, its templates and this program read them
from there. Nothing here imports ansible; pyroute2 only when `boot` runs.
"""

from __future__ import annotations

import os
import subprocess

from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _host_health, _names, _wg_sync

# ---------------------------------------------------------------- the plan's lists (pure)


def _rules(plan):
    """Exclusions first (the peer subnet to itself, then to each local network, via main), then
    each provider's classes and its resolver's queries (sent from the host end of its veth)."""
    base = plan["priority_base"]
    out = [{"priority": base, "from": plan["subnet"], "to": plan["subnet"], "table": "main"}]
    if plan.get("subnet6"):
        out.append({"priority": base, "from": plan["subnet6"], "to": plan["subnet6"], "table": "main"})
    local = [(plan["subnet"], net) for net in plan["local_networks"]]
    local += [(plan["subnet6"], net) for net in plan.get("local_networks6", [])]
    for index, (subnet, net) in enumerate(local):
        out.append({"priority": base + 1 + index, "from": subnet, "to": net, "table": "main"})
    for prov in plan["providers"]:
        for source in list(prov["ranges"]) + list(prov.get("ranges6", [])) + [prov["host_address"]]:
            out.append({"priority": prov["priority"], "from": source, "table": str(prov["table"])})
    return out


def _routes(plan):
    """Each provider's table: its default route into the namespace and a blackhole behind it. A provider with
    a fallback has only the blackhole: its default route is splitroute health's (into the namespace of the
    provider in use)."""
    out = []
    for prov in plan["providers"]:
        table = str(prov["table"])
        for family, via in (("4", prov["ns_address"]), ("6", prov.get("ns_address6"))):
            if via is None:
                continue
            if not prov.get("fallback"):
                out.append(
                    {"table": table, "dest": "default", "via": via, "dev": prov["host_veth"],
                     "metric": _names.PROVIDER_ROUTE_METRIC}
                )  # fmt: skip
            out.append(
                {"table": table, "dest": "default", "type": "blackhole", "family": family,
                 "metric": _names.BLACKHOLE_METRIC}
            )  # fmt: skip
    return out


def fallen_back(plan, prov):
    """The providers whose fallback names PROV: their classes and resolvers may leave by PROV's namespace."""
    return [p for p in plan["providers"] if prov["name"] in p.get("fallback", [])]


def _namespace(plan, prov):
    """The netns_veth arguments of PROV's namespace (boot and the role's task, without resolv_conf)."""
    v6 = prov.get("host_address6") is not None
    host = ["%s/%d" % (prov["host_address"], _names.VETH_PREFIX4)]
    ns = ["%s/%d" % (prov["ns_address"], _names.VETH_PREFIX4)]
    routes = [
        {"dest": "%s/32" % prov["server"], "via": prov["host_address"]},
        {"dest": plan["subnet"], "via": prov["host_address"]},
    ]
    # the answers to the resolvers of the providers that fall back to this one (they ask from their veth)
    routes += [{"dest": "%s/32" % p["host_address"], "via": prov["host_address"]} for p in fallen_back(plan, prov)]
    sysctls = {"net.ipv4.ip_forward": 1}
    if v6:
        host.append("%s/%d" % (prov["host_address6"], _names.VETH_PREFIX6))
        ns.append("%s/%d" % (prov["ns_address6"], _names.VETH_PREFIX6))
        routes.append({"dest": plan["subnet6"], "via": prov["host_address6"]})
        sysctls["net.ipv6.conf.all.forwarding"] = 1
    return {
        "provider": prov["name"],
        "name": prov["netns"],
        "veth": {"host_name": prov["host_veth"], "ns_name": prov["ns_veth"], "host_addresses": host,
                 "ns_addresses": ns},
        "routes": routes,
        "sysctls": sysctls,
        "nft_file": _names.provider_netns_nft_file(prov["name"]),
    }  # fmt: skip


def failover(plan):
    """The plan's `failover` (_host_health, as the client's): a group per provider with a fallback (its order,
    its table, its resolver's servers-file, asked from its veth address), and the exits they name: each
    provider's veth (the route's next hop: the namespace's end), namespace (its tunnel is checked and its
    probes sent there), DNS upstreams and check. No marks: a provider's classes are routed by address."""
    by_name = {p["name"]: p for p in plan["providers"]}
    families = [4, 6] if plan.get("subnet6") else [4]
    groups, exits = [], {}
    for prov in plan["providers"]:
        if not prov.get("fallback"):
            continue
        order = [prov["name"]] + list(prov["fallback"])
        groups.append(
            {
                "tunnel": prov["name"],
                "kind": "provider",
                "order": order,
                "table": prov["table"],
                "fwmark": None,
                "families": families,
                "sticky": prov["health"]["sticky"],
                "dns": prov["dns_upstreams"],
                "dns_source": prov["host_address"],
                "servers_file": _names.provider_servers_file(prov["name"]),
                "back_unit": _names.provider_dns_unit(prov["name"]),
            }
        )
        for name in order:
            e = by_name[name]
            exits[name] = {
                "interface": e["host_veth"],
                "via": {"4": e["ns_address"], "6": e.get("ns_address6")},
                "netns": e["netns"],
                "tunnel": _names.PROVIDER_TUNNEL_PREFIX,
                "mark": 0,
                "table": e["table"],
                "families": families,
                "dns": e["dns_upstreams"],
                "targets": e["health"]["targets"],
                "check": {k: v for k, v in e["health"].items() if k != "targets"},
            }
    names = [p["name"] for p in plan["providers"]]
    # splitroute health starts after the tunnels it checks and the resolvers it signals
    after = [_names.openvpn_unit(n) for n in names] + [_names.provider_dns_unit(n) for n in names]
    return {"state": _names.GATEWAY_HEALTH_STATE, "groups": groups, "exits": exits, "after": after}


def host_lists(plan):
    """What the role's tasks, its templates and `splitroute boot` take from the plan, computed once:
    rules, routes, scope, host sysctls, namespaces, units, paths and the failover."""
    names = [p["name"] for p in plan["providers"]]
    providers = [_names.openvpn_unit(n) for n in names] + [_names.provider_dns_unit(n) for n in names]
    fo = failover(plan)
    groups = {g["tunnel"] for g in fo["groups"]}
    wireguard = _names.wg_unit(plan["interface"])
    sysctls = {"net.ipv4.ip_forward": 1}
    if plan.get("subnet6"):
        sysctls["net.ipv6.conf.all.forwarding"] = 1
    return {
        "nft_table": _names.GATEWAY_NFT_TABLE,
        "nft_file": _names.GATEWAY_NFT_FILE,
        "paths": {
            "etc": _names.GATEWAY_ETC,
            "plan": _names.GATEWAY_PLAN,
            "sysctl_file": _names.GATEWAY_SYSCTL_FILE,
            # what splitroute health writes (removed with the gateway)
            "run": [_names.GATEWAY_HEALTH_STATE, _names.GATEWAY_RUN_DNS_DIR],
            "state_dir": _names.GATEWAY_STATE_DIR,
            "legacy_boot_script": _names.GATEWAY_LEGACY_BOOT_SCRIPT,
        },
        "rules": _rules(plan),
        "routes": _routes(plan),
        # a failover group's table is left out: its default route is splitroute health's (the blackhole is
        # the role's, added when missing)
        "scope": {
            "priorities": plan["priorities"],
            "tables": [str(p["table"]) for p in plan["providers"] if p["name"] not in groups],
            # absent: every provider's table
            "all_tables": [str(p["table"]) for p in plan["providers"]],
        },
        "failover": fo,
        # the resolvers of the providers with a fallback read their servers here (splitroute health writes it)
        "servers_files": {g["tunnel"]: g["servers_file"] for g in fo["groups"]},
        "sysctls": sysctls,
        "namespaces": [_namespace(plan, p) for p in plan["providers"]],
        "units": {
            "files": list(_names.GATEWAY_UNIT_FILES),
            "providers": providers,
            # enabled and started in this order (boot order)
            "start": [_names.GATEWAY_UNIT]
            + providers
            + [_names.GATEWAY_DNS_UNIT, wireguard, _names.GATEWAY_HEALTH_UNIT],
            # stopped and disabled on removal, in the reverse of the boot order
            "stop": [_names.GATEWAY_HEALTH_UNIT, wireguard, _names.GATEWAY_DNS_UNIT]
            + providers[::-1]
            + [_names.GATEWAY_UNIT],
            # restarted after a run changed one of these files (unit_states)
            "triggers": _triggers(plan["interface"], names),
        },
        "trees": _trees(plan),
    }


def _triggers(interface, names):
    """Unit -> {"restart": [paths], "reload": [paths]}: the files each of the gateway's units reads."""
    unit = _names.SYSTEMD + "/"
    out = {
        _names.wg_unit(interface): _names.wg_triggers(
            _names.WIREGUARD + "/%s.conf" % interface, _names.gateway_wg_dropin(interface)
        ),
        _names.GATEWAY_DNS_UNIT: {"restart": [_names.GATEWAY_DNS_CONF, unit + _names.GATEWAY_DNS_UNIT]},
        _names.GATEWAY_HEALTH_UNIT: {"restart": [_names.GATEWAY_PLAN, unit + _names.GATEWAY_HEALTH_UNIT]},
    }
    for name in names:
        out[_names.openvpn_unit(name)] = {
            "restart": [_names.provider_profile(name), _names.provider_auth(name), unit + _names.OPENVPN_TEMPLATE_UNIT]
        }
        out[_names.provider_dns_unit(name)] = {
            "restart": [_names.provider_dns_conf(name), unit + _names.PROVIDER_DNS_TEMPLATE_UNIT]
        }
    return out


def _trees(plan):
    """The gateway's file trees (one file_tree task each): the server's WireGuard configuration,
    the role's files (checked by nft and dnsmasq before any is written), the providers' OpenVPN
    profiles and credentials (0600, secrets), the host program's plan, the units and the drop-in.
    `provider` names the provider (its index in the plan's providers) a template renders as `item`."""
    entry = _names.tree_file
    etc, systemd, ovpn = _names.GATEWAY_ETC, _names.SYSTEMD_ETC, _names.GATEWAY_OPENVPN_DIR
    providers = list(enumerate(plan["providers"]))
    return {
        "wireguard": {
            "root": _names.WIREGUARD, "mode": "0600", "directory_mode": "0700", "validate": {},
            "files": [entry(_names.WIREGUARD, _names.WIREGUARD + "/%s.conf" % plan["interface"], "wg.conf.j2")],
        },
        "etc": {
            "root": etc, "mode": "0644", "directory_mode": "0755",
            "validate": {"*.nft": "nft -c -f %s", "*.conf": "dnsmasq --test --conf-file=%s"},
            "files": [entry(etc, _names.GATEWAY_NFT_FILE, "gateway.nft.j2"),
                      entry(etc, _names.GATEWAY_DNS_CONF, "dnsmasq.conf.j2")]
            + [entry(etc, _names.provider_netns_nft_file(p["name"]), "netns.nft.j2", provider=i) for i, p in providers]
            + [entry(etc, _names.provider_dns_conf(p["name"]), "dnsmasq-provider.conf.j2", provider=i)
               for i, p in providers],
        },
        "openvpn": {
            "root": ovpn, "mode": "0600", "directory_mode": "0700", "validate": {},
            "files": [entry(ovpn, _names.provider_profile(p["name"]), "openvpn.conf.j2", provider=i)
                      for i, p in providers]
            + [entry(ovpn, _names.provider_auth(p["name"]), "openvpn.auth.j2", provider=i)
               for i, p in providers if p.get("has_auth")],
        },
        "plan": {
            "root": _names.ETC, "mode": "0644", "directory_mode": "0755", "validate": {},
            "files": [entry(_names.ETC, _names.GATEWAY_PLAN, "gateway.json.j2")],
        },
        "systemd": {
            "root": systemd, "mode": "0644", "directory_mode": "0755", "validate": {},
            "files": [entry(systemd, _names.SYSTEMD + "/" + u, u + ".j2") for u in _names.GATEWAY_UNIT_FILES]
            + [entry(systemd, _names.gateway_wg_dropin(plan["interface"]), "wg-quick-dropin.conf.j2")],
        },
    }  # fmt: skip


# ---------------------------------------------------------------- boot (the host, real kernel)


SYSCTL_ROOT = "/proc/sys"


def _sysctl(key, value, log):
    """KEY (net.ipv4.ip_forward) to VALUE in this thread's network namespace, if it differs."""
    path = os.path.join(SYSCTL_ROOT, *key.split("."))
    want = str(value)
    try:
        with open(path, encoding="ascii") as fh:
            if fh.read().strip() == want:
                return
        with open(path, "w", encoding="ascii") as fh:
            fh.write(want + "\n")
    except OSError as exc:
        raise _host.HostError("sysctl %s=%s: %s" % (key, want, exc.strerror or exc)) from exc
    log("splitroute boot: sysctl %s=%s" % (key, want))


def _check(what, run):
    """RUN() (a subprocess.run of nft) succeeded, or a HostError naming WHAT and nft's message."""
    try:
        proc = run()
    except OSError as exc:
        raise _host.HostError("%s: %s" % (what, exc)) from exc
    if proc.returncode != 0:
        raise _host.HostError("%s: %s" % (what, proc.stderr.strip() or "exit status %d" % proc.returncode))


def _nft_file(path):
    _check("nft -f %s" % path, lambda: subprocess.run(["nft", "-f", path], capture_output=True, text=True, check=False))


def _nft_file_in(netns, path):
    """nft -f PATH inside NETNS: the file replaces the namespace's table in one transaction."""
    _check(
        "ip netns exec %s nft -f %s" % (netns, path),
        lambda: subprocess.run(
            ["ip", "netns", "exec", netns, "nft", "-f", path], capture_output=True, text=True, check=False
        ),
    )


def _netns_params(ns):
    veth = dict(ns["veth"], mtu=None)
    routes = [{"dest": r["dest"], "via": r.get("via"), "dev": r.get("dev"), "metric": r.get("metric")}
              for r in ns["routes"]]  # fmt: skip
    return {
        "name": ns["name"],
        "state": "present",
        "peer_netns": None,
        "veth": veth,
        "purge_addresses": True,
        "routes": routes,
        "host_routes": None,
        "sysctls": ns["sysctls"],
        "resolv_conf": None,  # the role writes it (/etc/netns/NAME persists)
    }


BOOT_KEYS = ("sysctls", "nft_file", "namespaces", "rules", "routes")


def boot(plan, args, log):
    from ansible_collections.splitroute.vpn.plugins.module_utils._netns_veth import (  # noqa: PLC0415 (only boot needs pyroute2)
        NetnsVeth,
    )

    missing = [key for key in BOOT_KEYS if key not in plan]
    if missing:
        # a plan written by a release before the host program's boot
        raise _host.HostError("the plan has no %s: run the role again" % ", ".join(missing))
    for key, value in sorted(plan["sysctls"].items()):
        _sysctl(key, value, log)
    _nft_file(plan["nft_file"])
    for ns in plan["namespaces"]:
        result = NetnsVeth(_host.Backend(_netns_params(ns), log)).run()
        for op in result["operations"]:
            log("splitroute boot: %s" % op)
        _nft_file_in(ns["name"], ns["nft_file"])
    _host.merge_rules(plan["rules"], plan["routes"], log)
    _host_health.init_servers(plan, log)
    return 0


COMMANDS = {
    "boot": boot,
    "health": (_host_health.setup, _host_health.command),
    "wg-sync": (_wg_sync.setup, _wg_sync.command(lambda plan: [plan["interface"]])),
}


# ---------------------------------------------------------------- pruning (pure)


def _providers(plan):
    return {
        p["name"]: p
        for p in (plan or {}).get("providers", [])
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    }


def prune(old, new, found=None):
    """What the gateway role removes from the host: the pieces of providers that OLD (the host's
    previous plan, or None) or FOUND ("files": the role's namespace tables and OpenVPN profiles
    found on the host, see _names.provider_of_file) have and NEW (the plan being applied, or
    None when the gateway is removed) does not. Returns providers, units (to stop and disable),
    namespaces (netns_veth arguments for state absent), tables (whose routes and rules go) and
    files; each sorted, nothing of NEW in them."""
    found = found or {}
    old_p, new_p = _providers(old), _providers(new)
    from_files = {_names.provider_of_file(f) for f in found.get("files", [])} - {None}
    gone = sorted((set(old_p) | from_files) - set(new_p))
    units, namespaces, files = [], [], []
    for name in gone:
        # the resolver first, then the tunnel it asks through
        units += [_names.provider_dns_unit(name), _names.openvpn_unit(name)]
        prov = old_p.get(name, {})
        namespaces.append(
            {
                "provider": name,
                "name": prov.get("netns", _names.provider_netns(name)),
                "veth": {
                    "host_name": prov.get("host_veth", _names.provider_host_veth(name)),
                    "ns_name": prov.get("ns_veth", _names.PROVIDER_NS_VETH),
                },
            }
        )
        files += _names.provider_files(name)
    keep_tables = {str(p.get("table")) for p in new_p.values()}
    tables = {str(p.get("table")) for p in old_p.values() if str(p.get("table")).isdigit()} - keep_tables
    return {
        "providers": gone,
        "units": units,
        "namespaces": namespaces,
        "tables": sorted(tables, key=int),
        "files": sorted(files),
    }
