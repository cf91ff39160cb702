# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: status_report
short_description: Turn the read-only outputs gathered by playbooks/status.yml into a split-tunnel status report
version_added: 0.1.0
author:
  - splitroute maintainers (@splitroute)
description:
  - Used by C(playbooks/status.yml). Reads what C(wg show all dump), C(ip -j link), C(ip -j rule), C(ip -j route show
    table all), C(ip -j netns list) and C(nft -j list table) printed on a host and returns what is in place - the
    WireGuard interfaces with their peers and last handshakes, the client's nftables sets with their element counts,
    each tunnel's chain from mark to rule to routing table, the gateway's rules and provider tables, and whether a
    blackhole default route (or another fail-closed default route, C(unreachable) or C(prohibit)) is armed behind
    each table, per address family.
  - A host with only the client role, only the gateway role or neither is reported as it is; a role with nothing on the
    host is C(configured=false). A command that failed or is missing is reported in C(errors), never raised.
  - The WireGuard private and preshared keys in a dump are never read (the playbook also hides them on the host).
  - The result also holds the same figures twice more - C(lines), the readable report, and C(metrics), the
    Prometheus text format for node-exporter's textfile collector (C(# HELP) and C(# TYPE) lines, label values
    escaped, every series labelled with C(host)).
options:
  _input:
    description:
      - Command results by key (each a dict with C(rc), C(stdout), C(stderr), and C(msg) when the command could not
        run), as registered by the playbook.
      - Keys C(now) (C(date +%s)), C(wg) (C(wg show all dump)), C(links), C(rules4), C(rules6), C(routes4),
        C(routes6), C(netns), C(nft_client), C(nft_gateway); a missing key is reported as not collected.
    type: dict
    required: true
  settings:
    description:
      - What the inventory says, all optional. C(host) (the host label), C(client_table) (default C(splitroute)),
        C(client_priority_base) (default 1000; the client's rules are those with the chain's marks and those at
        priorities base to base+99), C(client_tunnels) (tunnel names the inventory expects), C(gateway_table)
        (default C(splitroute_gateway)), C(gateway_priority_base) (default 2000; the gateway's rules are those at
        base to base+199), C(gateway_table_base) (default 200), C(gateway_interface) (default C(wg0)),
        C(gateway_peers) (the role's peers, as dicts or as C([name, public_key, address]) lists; only these three
        keys are read, and a WireGuard peer gets the name of the peer with its public key, or else with its address
        as its one allowed IP), C(gateway_providers) (provider names, in the role's order).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Build the report from the registered command results
  ansible.builtin.set_fact:
    status: "{{ raw | splitroute.vpn.status_report({'host': inventory_hostname}) }}"

- name: Print it
  ansible.builtin.debug:
    msg: "{{ status.lines }}"

- name: Write the metrics for node-exporter's textfile collector (then rename it to a name ending in .prom)
  ansible.builtin.copy:
    content: "{{ status.metrics }}"
    dest: /var/lib/prometheus/node-exporter/.splitroute.prom.tmp
    mode: "0644"
"""

RETURN = r"""
_value:
  description:
    - The report. Keys C(host), C(timestamp), C(wireguard) (interfaces with C(up), C(last_handshake), C(rx_bytes),
      C(tx_bytes) and C(peers)), C(client) (C(configured), C(nft_table), C(sets), C(tunnels), C(rules)), C(gateway)
      (C(configured), C(nft_table), C(interface), C(peers), C(rules), C(providers)), C(problems), C(errors),
      C(lines) and C(metrics).
    - Metrics - C(splitroute_status_timestamp_seconds), C(splitroute_client_configured),
      C(splitroute_gateway_configured), C(splitroute_problems), C(splitroute_nft_table_present{table}),
      C(splitroute_tunnel_up{interface}), C(splitroute_tunnel_peers{interface}),
      C(splitroute_tunnel_last_handshake_seconds{interface}) (0 = never), C(splitroute_tunnel_rx_bytes{interface}),
      C(splitroute_tunnel_tx_bytes{interface}), C(splitroute_peer_last_handshake_seconds{interface,peer,name}),
      C(splitroute_peer_rx_bytes), C(splitroute_peer_tx_bytes), C(splitroute_set_elements{table,set}),
      C(splitroute_rules{family}), C(splitroute_rule_present{role,name,family,table}),
      C(splitroute_route_present{table,family}), C(splitroute_blackhole_armed{table,family}),
      C(splitroute_netns_present{netns}).
  type: dict
"""

import json
import re
import time

from ansible.errors import AnsibleFilterError

FAMILIES = ("ipv4", "ipv6")
_FAIL_CLOSED = ("blackhole", "unreachable", "prohibit")
_SET_SUFFIX = re.compile(r"^(?P<tunnel>.+)_(?P<kind>v4|v6|net4|net6)$")
_SET_ORDER = {"v4": 0, "v6": 1, "net4": 2, "net6": 3}
_SPECIAL_TABLES = ("local", "main", "default")


def _int(value, default=None):
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return default


def _result(raw, key):
    """(stdout, error) of one command; error is a short text when it did not succeed."""
    item = raw.get(key)
    if not isinstance(item, dict):
        return None, "not collected"
    if item.get("skipped"):
        return None, "skipped"
    if item.get("rc") == 0:
        return item.get("stdout") or "", None
    text = "\n".join(str(item.get(k) or "") for k in ("stderr", "msg")).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return None, first or "exit status %s" % item.get("rc")


def _json(raw, key, errors, what):
    stdout, err = _result(raw, key)
    if err is not None:
        errors.append("%s: %s" % (what, err))
        return None
    if not stdout.strip():
        return []
    try:
        return json.loads(stdout)
    except ValueError:
        errors.append("%s: unreadable output" % what)
        return None


# ---------------------------------------------------------------- parsers


def parse_wg_dump(text):
    """`wg show all dump`: interface lines (5 fields) and peer lines (9 fields), tab-separated.

    Field 2 of an interface line (private key) and field 3 of a peer line (preshared key) are never read.
    """
    interfaces = {}

    def iface(name):
        return interfaces.setdefault(
            name, {"interface": name, "public_key": None, "listen_port": None, "fwmark": None, "peers": []}
        )

    for line in (text or "").splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            entry = iface(fields[0])
            entry["public_key"] = fields[2] if fields[2] != "(none)" else None
            entry["listen_port"] = _int(fields[3])
            entry["fwmark"] = None if fields[4] == "off" else _int(fields[4])
        elif len(fields) == 9:
            iface(fields[0])["peers"].append(
                {
                    "public_key": fields[1],
                    "endpoint": None if fields[3] == "(none)" else fields[3],
                    "allowed_ips": [] if fields[4] == "(none)" else fields[4].split(","),
                    "last_handshake": _int(fields[5], 0),
                    "rx_bytes": _int(fields[6], 0),
                    "tx_bytes": _int(fields[7], 0),
                    "persistent_keepalive": None if fields[8] == "off" else _int(fields[8]),
                }
            )
    return interfaces


def parse_nft_table(raw, key, name, errors):
    """`nft -j list table inet NAME`: presence, sets with element counts, chains, and marks set per set."""
    table = {"family": "inet", "name": name, "present": False, "sets": [], "chains": [], "marks": {}, "all_marks": []}
    stdout, err = _result(raw, key)
    if err is not None:
        # nft's answer for a table that does not exist (not Ansible's for a program that does not)
        if not err.startswith("Error: No such file or directory"):
            errors.append("nft table inet %s: %s" % (name, err))
            table["error"] = err
        return table
    try:
        items = json.loads(stdout).get("nftables", [])
    except (ValueError, AttributeError):
        errors.append("nft table inet %s: unreadable output" % name)
        table["error"] = "unreadable output"
        return table
    all_marks = set()
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if "table" in item:
            table["present"] = True
        elif "set" in item:
            nft_set = item["set"]
            table["sets"].append(
                {"name": nft_set.get("name"), "type": nft_set.get("type"), "elements": len(nft_set.get("elem") or [])}
            )
        elif "chain" in item:
            table["chains"].append(item["chain"].get("name"))
        elif "rule" in item:
            refs, marks = [], []
            for expr in item["rule"].get("expr") or []:
                match = expr.get("match") if isinstance(expr, dict) else None
                if isinstance(match, dict) and isinstance(match.get("right"), str) and match["right"].startswith("@"):
                    refs.append(match["right"][1:])
                mangle = expr.get("mangle") if isinstance(expr, dict) else None
                if (
                    isinstance(mangle, dict)
                    and mangle.get("key") == {"meta": {"key": "mark"}}
                    and isinstance(mangle.get("value"), int)
                ):
                    marks.append(mangle["value"])
            all_marks.update(marks)
            for ref in refs:
                for mark in marks:
                    table["marks"].setdefault(ref, mark)
    table["all_marks"] = sorted(all_marks)
    return table


def parse_rules(data, family):
    rules = []
    for item in data or []:
        if not isinstance(item, dict):
            continue
        src = item.get("src", "all")
        if item.get("srclen") is not None:
            src = "%s/%s" % (src, item["srclen"])
        dst = item.get("dst")
        if dst is not None and item.get("dstlen") is not None:
            dst = "%s/%s" % (dst, item["dstlen"])
        rule = {
            "family": family,
            "priority": _int(item.get("priority"), 0),
            "from": src,
            "to": dst,
            "fwmark": _int(item.get("fwmark")),
            "fwmask": _int(item.get("fwmask")),
            "iif": item.get("iif"),
            "oif": item.get("oif"),
            "table": str(item["table"]) if item.get("table") is not None else None,
            "action": item.get("action"),
            "not": "not" in item,  # ip -j prints "not": null
        }
        words = ["%d:" % rule["priority"]]
        if rule["not"]:
            words.append("not")
        words += ["from", src]
        if dst is not None:
            words += ["to", dst]
        if rule["fwmark"] is not None:
            words += [
                "fwmark",
                "%#x" % rule["fwmark"] + ("/%#x" % rule["fwmask"] if rule["fwmask"] is not None else ""),
            ]
        for key in ("iif", "oif"):
            if rule[key]:
                words += [key, str(rule[key])]
        words += ["lookup", rule["table"]] if rule["table"] is not None else [str(rule["action"] or "?")]
        rule["text"] = " ".join(words)
        rules.append(rule)
    return rules


def parse_routes(data, family):
    routes = []
    for item in data or []:
        if not isinstance(item, dict):
            continue
        routes.append(
            {
                "family": family,
                "table": str(item.get("table", "main")),
                "dst": item.get("dst"),
                "type": item.get("type", "unicast"),
                "dev": item.get("dev"),
                "gateway": item.get("gateway"),
                "metric": _int(item.get("metric"), 0),
            }
        )
    return routes


def _mark_matches(rule, mark):
    if rule["fwmark"] is None or mark is None or rule["not"]:
        return False
    mask = rule["fwmask"] if rule["fwmask"] is not None else 0xFFFFFFFF
    return (mark & mask) == (rule["fwmark"] & mask)


def table_state(routes, table, family, dev=None):
    """The default routes of one table and family: the live route (preferring DEV) and the fail-closed one."""
    defaults = [r for r in routes if r["table"] == table and r["family"] == family and r["dst"] == "default"]
    closed = sorted((r for r in defaults if r["type"] in _FAIL_CLOSED), key=lambda r: r["metric"])
    live = sorted(
        (r for r in defaults if r["type"] == "unicast"),
        key=lambda r: (dev is not None and r["dev"] != dev, r["metric"]),
    )
    route = {k: live[0][k] for k in ("dev", "gateway", "metric")} if live else None
    blackhole = {"type": closed[0]["type"], "metric": closed[0]["metric"]} if closed else None
    return {
        "table": table,
        "family": family,
        "route": route,
        "blackhole": blackhole,
        "armed": blackhole is not None,
        "shadowed": bool(route and blackhole and blackhole["metric"] <= route["metric"]),
    }


# ---------------------------------------------------------------- the report


def _links(data):
    out = {}
    for item in data or []:
        if isinstance(item, dict) and item.get("ifname"):
            out[item["ifname"]] = {"exists": True, "up": "UP" in (item.get("flags") or [])}
    return out


def _wireguard(wg, links, now):
    out = []
    for name in sorted(wg):
        entry = wg[name]
        peers = entry["peers"]
        link = links.get(name, {"exists": False, "up": False})
        last = max((p["last_handshake"] for p in peers), default=0)
        out.append(
            {
                "interface": name,
                "exists": link["exists"],
                "up": link["up"],
                "public_key": entry["public_key"],
                "listen_port": entry["listen_port"],
                "peers": peers,
                "last_handshake": last,
                "handshake_age": max(now - last, 0) if last else None,
                "rx_bytes": sum(p["rx_bytes"] for p in peers),
                "tx_bytes": sum(p["tx_bytes"] for p in peers),
            }
        )
    return out


def _client(settings, nft, rules, routes, links, wireguard, problems):
    base = _int(settings.get("client_priority_base"), 1000)
    window = (base, base + 99)
    marks = set(nft["all_marks"])
    ours = [
        r
        for r in rules
        if window[0] <= r["priority"] <= window[1] or any(_mark_matches(r, m) for m in marks)
    ]  # fmt: skip
    tunnels = {}
    for nft_set in nft["sets"]:
        match = _SET_SUFFIX.match(nft_set["name"] or "")
        if match:
            tunnels.setdefault(match.group("tunnel"), []).append(dict(nft_set, kind=match.group("kind")))
    for name in settings.get("client_tunnels") or []:
        if isinstance(name, str) and name:
            tunnels.setdefault(name, [])
    configured = nft["present"] or bool(ours)
    wg_by_name = {w["interface"]: w for w in wireguard}
    out_tunnels = []
    for name in sorted(tunnels):
        sets = sorted(tunnels[name], key=lambda s: _SET_ORDER[s["kind"]])
        mark = next((nft["marks"][s["name"]] for s in sets if s["name"] in nft["marks"]), None)
        link = links.get(name, {"exists": False, "up": False})
        families = []
        for family in FAMILIES:
            rule = next((r for r in ours if r["family"] == family and _mark_matches(r, mark)), None)
            table = rule["table"] if rule and rule["table"] not in (None,) + _SPECIAL_TABLES else None
            state = table_state(routes, table, family, dev=name) if table else {"table": None, "family": family}
            state["rule"] = {"priority": rule["priority"], "text": rule["text"]} if rule else None
            families.append(state)
        tunnel = {
            "name": name,
            "sets": [{"name": s["name"], "elements": s["elements"]} for s in sets],
            "elements": sum(s["elements"] for s in sets),
            "mark": mark,
            "exists": link["exists"],
            "up": link["up"],
            "wireguard": name in wg_by_name,
            "families": families,
        }
        out_tunnels.append(tunnel)
        if not configured:
            problems.append(
                "client: the inventory lists tunnel %s, but the client role's table and rules are absent" % name
            )
            continue
        if not sets:
            problems.append("tunnel %s: no sets in nft table inet %s" % (name, nft["name"]))
        elif mark is None:
            problems.append("tunnel %s: no rule in nft table inet %s marks its sets' addresses" % (name, nft["name"]))
        if not link["up"]:
            problems.append("tunnel %s: interface %s" % (name, "down" if link["exists"] else "missing"))
        for state in families:
            label = "tunnel %s %s" % (name, state["family"])
            if mark is not None and state["rule"] is None:
                problems.append("%s: no ip rule for mark %#x" % (label, mark))
            elif state.get("table") and not state["armed"]:
                problems.append(
                    "%s: table %s has no blackhole default route (not fail-closed)" % (label, state["table"])
                )
            if state.get("shadowed"):
                problems.append(
                    "%s: the blackhole's metric is not above the tunnel route's in table %s" % (label, state["table"])
                )
    if configured and not nft["present"] and "error" not in nft:
        problems.append("client: rules in place but nft table inet %s is missing" % nft["name"])
    # tables the rules look up that no tunnel's sets lead to (e.g. the nft table is gone): their state too
    covered = {(state["table"], state["family"]) for t in out_tunnels for state in t["families"]}
    other_tables = []
    for rule in ours:
        key = (rule["table"], rule["family"])
        if rule["table"] and rule["table"] not in _SPECIAL_TABLES and key not in covered:
            covered.add(key)
            state = table_state(routes, rule["table"], rule["family"])
            other_tables.append(state)
            if not state["armed"]:
                problems.append(
                    "table %s %s (rule %d): no blackhole default route (not fail-closed)"
                    % (rule["table"], rule["family"], rule["priority"])
                )
    return {
        "configured": configured,
        "nft_table": {k: nft[k] for k in ("family", "name", "present", "chains")},
        "sets": nft["sets"],
        "marks": nft["all_marks"],
        "priorities": "%d-%d" % window,
        "rules": [r["text"] for r in ours],
        "rule_entries": ours,
        "tunnels": out_tunnels,
        "other_tables": other_tables,
    }


def _peer_names(peers):
    """Public key to name and address to name, from dicts or [name, public_key, address] triples."""
    by_key, by_address = {}, {}
    for peer in peers or []:
        if isinstance(peer, dict):
            name, key, address = peer.get("name"), peer.get("public_key"), peer.get("address")
        elif isinstance(peer, (list, tuple)) and len(peer) == 3:
            name, key, address = peer
        else:
            continue
        if not name:
            continue
        if isinstance(key, str) and key:
            by_key[key] = str(name)
        if address:
            by_address[str(address).split("/", maxsplit=1)[0]] = str(name)
    return by_key, by_address


def _peer_name(peer, by_key, by_address):
    if peer["public_key"] in by_key:
        return by_key[peer["public_key"]]
    for allowed in peer["allowed_ips"]:
        address, _sep, length = allowed.partition("/")
        if length in ("32", "128") and address in by_address:
            return by_address[address]
    return ""


def _gateway(settings, nft, rules, routes, links, wireguard, netns, problems):
    base = _int(settings.get("gateway_priority_base"), 2000)
    table_base = _int(settings.get("gateway_table_base"), 200)
    window = (base, base + 199)
    ours = [r for r in rules if window[0] <= r["priority"] <= window[1]]
    configured = nft["present"] or bool(ours)
    ifname = str(settings.get("gateway_interface") or "wg0")
    by_key, by_address = _peer_names(settings.get("gateway_peers"))
    wg = next((w for w in wireguard if w["interface"] == ifname), None)
    link = links.get(ifname, {"exists": False, "up": False})
    peers = []
    for peer in (wg or {}).get("peers", []):
        peers.append(dict(peer, name=_peer_name(peer, by_key, by_address)))

    providers = {}
    for index, name in enumerate(settings.get("gateway_providers") or []):
        if isinstance(name, str) and name:
            providers[str(table_base + index)] = {"name": name, "expected": True}
    for rule in ours:
        if rule["table"] and rule["table"] not in _SPECIAL_TABLES and rule["table"] not in providers:
            live = [
                r for r in routes if r["table"] == rule["table"] and r["dst"] == "default" and r["type"] == "unicast"
            ]
            dev = next((r["dev"] for r in live if (r["dev"] or "").startswith("srgw-")), None)
            providers[rule["table"]] = {"name": dev[5:] if dev else "table %s" % rule["table"], "expected": False}
    out_providers = []
    for table in sorted(providers, key=lambda t: (_int(t, 0), t)):
        prov = providers[table]
        veth = "srgw-%s" % prov["name"] if not prov["name"].startswith("table ") else None
        state = table_state(routes, table, "ipv4", dev=veth)
        entry = {
            "name": prov["name"],
            "table": table,
            "netns": veth,
            "netns_present": veth in netns if veth else None,
            "veth_up": links.get(veth, {}).get("up", False) if veth else None,
            "rules": [r["text"] for r in ours if r["table"] == table],
            "route": state["route"],
            "blackhole": state["blackhole"],
            "armed": state["armed"],
            "shadowed": state["shadowed"],
        }
        out_providers.append(entry)
        if not configured:
            continue
        label = "provider %s" % prov["name"]
        if veth and not entry["netns_present"]:
            problems.append("%s: namespace %s is missing" % (label, veth))
        if not entry["rules"]:
            problems.append("%s: no ip rule looks up table %s" % (label, table))
        if entry["route"] is None:
            problems.append(
                "%s: table %s has no route into the namespace (its classes are blackholed)" % (label, table)
            )
        if not entry["armed"]:
            problems.append("%s: table %s has no blackhole default route (not fail-closed)" % (label, table))
        if entry["shadowed"]:
            problems.append("%s: the blackhole's metric is not above the route's in table %s" % (label, table))
    if not configured and (providers or by_key or by_address):
        problems.append(
            "gateway: the inventory lists peers or providers, but the gateway role's table and rules are absent"
        )
    if configured:
        if not nft["present"] and "error" not in nft:
            problems.append("gateway: nft table inet %s (the forward policy) is missing" % nft["name"])
        if not link["up"]:
            problems.append("gateway: interface %s %s" % (ifname, "down" if link["exists"] else "missing"))
    return {
        "configured": configured,
        "nft_table": {k: nft[k] for k in ("family", "name", "present", "chains")},
        "interface": ifname,
        "exists": link["exists"],
        "up": link["up"],
        "wireguard": wg is not None,
        "listen_port": (wg or {}).get("listen_port"),
        "peers": peers,
        "priorities": "%d-%d" % window,
        "rules": [r["text"] for r in ours],
        "rule_entries": ours,
        "providers": out_providers,
    }


def status_report(raw, settings=None):
    if not isinstance(raw, dict):
        raise AnsibleFilterError("status_report expects a dict of command results by key, got %s" % type(raw).__name__)
    settings = settings if isinstance(settings, dict) else {}
    errors, problems = [], []

    stdout, _err = _result(raw, "now")
    now = _int((stdout or "").strip())
    if now is None:
        now = int(time.time())

    stdout, wg_error = _result(raw, "wg")
    wg = parse_wg_dump(stdout) if wg_error is None else {}
    if wg_error is not None:
        errors.append("wg show all dump: %s" % wg_error)
    links = _links(_json(raw, "links", errors, "ip link"))
    rules, routes = [], []
    for family, suffix in (("ipv4", "4"), ("ipv6", "6")):
        rules += parse_rules(_json(raw, "rules" + suffix, errors, "ip -%s rule" % suffix), family)
        routes += parse_routes(_json(raw, "routes" + suffix, errors, "ip -%s route" % suffix), family)
    netns = [n.get("name") for n in _json(raw, "netns", errors, "ip netns") or [] if isinstance(n, dict)]

    wireguard = _wireguard(wg, links, now)
    client_nft = parse_nft_table(raw, "nft_client", str(settings.get("client_table") or "splitroute"), errors)
    gateway_nft = parse_nft_table(
        raw, "nft_gateway", str(settings.get("gateway_table") or "splitroute_gateway"), errors
    )
    client = _client(settings, client_nft, rules, routes, links, wireguard, problems)
    gateway = _gateway(settings, gateway_nft, rules, routes, links, wireguard, netns, problems)
    for tunnel in wireguard:
        if not tunnel["exists"]:
            problems.append("wireguard %s: wg lists it but this namespace has no such interface" % tunnel["interface"])

    report = {
        "host": str(settings.get("host") or ""),
        "timestamp": now,
        "wireguard": wireguard,
        "client": client,
        "gateway": gateway,
        "netns": netns,
        "problems": problems,
        "errors": errors,
    }
    report["lines"] = report_lines(report)
    report["metrics"] = render_metrics(report)
    return report


# ---------------------------------------------------------------- the readable report


def _bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0
    return str(count)  # pragma: no cover


def _age(seconds):
    if seconds is None:
        return "never"
    if seconds < 120:
        return "%d s ago" % seconds
    if seconds < 7200:
        return "%d min ago" % (seconds // 60)
    if seconds < 172800:
        return "%d h ago" % (seconds // 3600)
    return "%d days ago" % (seconds // 86400)


def _route_text(state):
    if state.get("table") is None:
        return "no table"
    route = state["route"]
    parts = ["table %s:" % state["table"]]
    if route:
        parts.append(
            "route %sdev %s metric %d,"
            % ("via %s " % route["gateway"] if route["gateway"] else "", route["dev"], route["metric"])
        )
    else:
        parts.append("no route,")
    if state["blackhole"]:
        parts.append("%s metric %d (armed)" % (state["blackhole"]["type"], state["blackhole"]["metric"]))
    else:
        parts.append("NO blackhole (not armed)")
    if state.get("shadowed"):
        parts.append("- the blackhole's metric is not above the route's")
    return " ".join(parts)


def _wg_text(wg):
    state = "up" if wg["up"] else ("down" if wg["exists"] else "missing")
    seen = sum(1 for p in wg["peers"] if p["last_handshake"])
    return "%s, %d peer%s (%d with a handshake), last handshake %s, rx %s, tx %s" % (
        state, len(wg["peers"]), "" if len(wg["peers"]) == 1 else "s", seen, _age(wg["handshake_age"]),
        _bytes(wg["rx_bytes"]), _bytes(wg["tx_bytes"]),
    )  # fmt: skip


def report_lines(report):
    now = report["timestamp"]
    client, gateway = report["client"], report["gateway"]
    lines = [
        "%s: client %s, gateway %s, %s (at %s UTC)"
        % (
            report["host"] or "host",
            "configured" if client["configured"] else "not configured",
            "configured" if gateway["configured"] else "not configured",
            "%d problem%s" % (len(report["problems"]), "" if len(report["problems"]) == 1 else "s")
            if report["problems"]
            else "no problems",
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
        )
    ]
    wg_by_name = {w["interface"]: w for w in report["wireguard"]}

    nft = client["nft_table"]
    if not client["configured"]:
        lines.append(
            "client: not configured (no nft table inet %s, no rules at priorities %s)"
            % (nft["name"], client["priorities"])
        )
    else:
        lines.append(
            "client: nft table inet %s %s, %d sets, marks %s"
            % (
                nft["name"],
                "present" if nft["present"] else "MISSING",
                len(client["sets"]),
                ", ".join("%#x" % m for m in client["marks"]) or "none",
            )
        )
        for tunnel in client["tunnels"]:
            wg = wg_by_name.get(tunnel["name"])
            if wg:
                state = _wg_text(wg)
            else:
                state = "%s (no WireGuard interface of that name)" % (
                    "up" if tunnel["up"] else ("down" if tunnel["exists"] else "missing")
                )
            lines.append("  tunnel %s: %s" % (tunnel["name"], state))
            lines.append(
                "    sets: %s" % (", ".join("%s %d" % (s["name"], s["elements"]) for s in tunnel["sets"]) or "none")
            )
            for state in tunnel["families"]:
                mark = "%#x" % tunnel["mark"] if tunnel["mark"] is not None else "(no mark)"
                rule = "rule %d" % state["rule"]["priority"] if state["rule"] else "NO rule"
                lines.append("    %s: mark %s -> %s -> %s" % (state["family"], mark, rule, _route_text(state)))
        for state in client["other_tables"]:
            lines.append("  %s, no tunnel's sets lead there: %s" % (state["family"], _route_text(state)))
        for rule in client["rule_entries"]:
            lines.append("  %s rule %s" % (rule["family"], rule["text"]))

    nft = gateway["nft_table"]
    if not gateway["configured"]:
        lines.append(
            "gateway: not configured (no nft table inet %s, no rules at priorities %s)"
            % (nft["name"], gateway["priorities"])
        )
    else:
        lines.append(
            "gateway: nft table inet %s %s (chains %s)"
            % (nft["name"], "present" if nft["present"] else "MISSING", ", ".join(nft["chains"]) or "none")
        )
        wg = wg_by_name.get(gateway["interface"])
        if wg:
            lines.append(
                "  %s: %s, listen port %s" % (gateway["interface"], _wg_text(wg), gateway["listen_port"] or "none")
            )
        else:
            lines.append(
                "  %s: %s, not a WireGuard interface"
                % (gateway["interface"], "up" if gateway["up"] else ("down" if gateway["exists"] else "missing"))
            )
        for peer in gateway["peers"]:
            age = max(now - peer["last_handshake"], 0) if peer["last_handshake"] else None
            lines.append(
                "    peer %s%s %s: handshake %s, rx %s, tx %s%s"
                % (
                    peer["name"] + " " if peer["name"] else "",
                    peer["public_key"],
                    ",".join(peer["allowed_ips"]) or "(no allowed ips)",
                    _age(age),
                    _bytes(peer["rx_bytes"]),
                    _bytes(peer["tx_bytes"]),
                    ", endpoint %s" % peer["endpoint"] if peer["endpoint"] else "",
                )
            )
        for rule in gateway["rule_entries"]:
            lines.append("  %s rule %s" % (rule["family"], rule["text"]))
        for prov in gateway["providers"]:
            netns = (
                "namespace %s %s" % (prov["netns"], "present" if prov["netns_present"] else "MISSING")
                if prov["netns"]
                else "no namespace known"
            )
            state = {"table": prov["table"], "route": prov["route"], "blackhole": prov["blackhole"],
                     "shadowed": prov["shadowed"]}  # fmt: skip
            lines.append("  provider %s: %s, ipv4 %s" % (prov["name"], netns, _route_text(state)))

    others = [w for w in report["wireguard"] if w["interface"] not in {t["name"] for t in client["tunnels"]}]
    if gateway["configured"]:
        others = [w for w in others if w["interface"] != gateway["interface"]]
    for wg in others:
        lines.append("other WireGuard interface %s: %s" % (wg["interface"], _wg_text(wg)))
    for problem in report["problems"]:
        lines.append("PROBLEM: %s" % problem)
    for error in report["errors"]:
        lines.append("could not read: %s" % error)
    return lines


# ---------------------------------------------------------------- Prometheus text format

_METRICS = (
    ("splitroute_status_timestamp_seconds", "gauge", "When the status was read (Unix time on the host)."),
    ("splitroute_client_configured", "gauge", "1 when the client role's nft table or rules are on the host."),
    ("splitroute_gateway_configured", "gauge", "1 when the gateway role's nft table or rules are on the host."),
    ("splitroute_problems", "gauge", "Number of problems the status report found."),
    ("splitroute_nft_table_present", "gauge", "1 when the role's nftables table exists."),
    ("splitroute_tunnel_up", "gauge", "1 when the tunnel's interface exists and is up."),
    ("splitroute_tunnel_peers", "gauge", "Number of WireGuard peers of the interface."),
    ("splitroute_tunnel_last_handshake_seconds", "gauge", "Latest handshake with any peer (Unix time, 0 = never)."),
    ("splitroute_tunnel_rx_bytes", "counter", "Bytes received from all peers of the interface."),
    ("splitroute_tunnel_tx_bytes", "counter", "Bytes sent to all peers of the interface."),
    ("splitroute_peer_last_handshake_seconds", "gauge", "Latest handshake with the peer (Unix time, 0 = never)."),
    ("splitroute_peer_rx_bytes", "counter", "Bytes received from the peer."),
    ("splitroute_peer_tx_bytes", "counter", "Bytes sent to the peer."),
    ("splitroute_set_elements", "gauge", "Number of elements in the nftables set."),
    ("splitroute_rules", "gauge", "Number of ip rules of the role (by priority range or mark)."),
    ("splitroute_rule_present", "gauge", "1 when an ip rule leads the tunnel's or provider's traffic to its table."),
    ("splitroute_route_present", "gauge", "1 when the table has a default route that is not fail-closed."),
    ("splitroute_blackhole_armed", "gauge", "1 when the table has a blackhole (fail-closed) default route."),
    ("splitroute_netns_present", "gauge", "1 when the provider's network namespace exists."),
)


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n")


def render_metrics(report):
    """The report in the Prometheus text exposition format."""
    samples = {name: [] for name, _type, _help in _METRICS}

    def add(metric, value, **labels):
        samples[metric].append((dict(host=report.get("host", ""), **labels), int(value)))

    client, gateway = report["client"], report["gateway"]
    add("splitroute_status_timestamp_seconds", report["timestamp"])
    add("splitroute_client_configured", client["configured"])
    add("splitroute_gateway_configured", gateway["configured"])
    add("splitroute_problems", len(report["problems"]))
    for section in (client, gateway):
        if section["configured"]:
            add("splitroute_nft_table_present", section["nft_table"]["present"], table=section["nft_table"]["name"])

    interfaces = {w["interface"]: w for w in report["wireguard"]}
    names = [t["name"] for t in client["tunnels"]] if client["configured"] else []
    if gateway["configured"]:
        names.append(gateway["interface"])
    names += [n for n in interfaces if n not in names]
    peer_names = {p["public_key"]: p["name"] for p in gateway["peers"]}
    for name in names:
        wg = interfaces.get(name)
        tunnel = next((t for t in client["tunnels"] if t["name"] == name), None)
        if wg:
            up = wg["up"]
        elif tunnel:
            up = tunnel["up"]
        else:
            up = gateway["up"]
        add("splitroute_tunnel_up", up, interface=name)
        if not wg:
            continue
        add("splitroute_tunnel_peers", len(wg["peers"]), interface=name)
        add("splitroute_tunnel_last_handshake_seconds", wg["last_handshake"], interface=name)
        add("splitroute_tunnel_rx_bytes", wg["rx_bytes"], interface=name)
        add("splitroute_tunnel_tx_bytes", wg["tx_bytes"], interface=name)
        for peer in wg["peers"]:
            labels = {"interface": name, "peer": peer["public_key"]}
            if gateway["configured"] and name == gateway["interface"]:
                labels["name"] = peer_names.get(peer["public_key"], "")
            else:
                labels["name"] = ""
            add("splitroute_peer_last_handshake_seconds", peer["last_handshake"], **labels)
            add("splitroute_peer_rx_bytes", peer["rx_bytes"], **labels)
            add("splitroute_peer_tx_bytes", peer["tx_bytes"], **labels)

    for nft_set in client["sets"]:
        add("splitroute_set_elements", nft_set["elements"], table=client["nft_table"]["name"], set=nft_set["name"])

    tables = {}
    if client["configured"] or gateway["configured"]:
        rules = client["rule_entries"] + [r for r in gateway["rule_entries"] if r not in client["rule_entries"]]
        for family in FAMILIES:
            add("splitroute_rules", sum(1 for r in rules if r["family"] == family), family=family)
    if client["configured"]:
        for tunnel in client["tunnels"]:
            for state in tunnel["families"]:
                add(
                    "splitroute_rule_present", state["rule"] is not None,
                    role="client", name=tunnel["name"], family=state["family"], table=state.get("table") or "",
                )  # fmt: skip
                if state.get("table"):
                    tables[(state["table"], state["family"])] = state
        for state in client["other_tables"]:
            tables.setdefault((state["table"], state["family"]), state)
    if gateway["configured"]:
        for prov in gateway["providers"]:
            add(
                "splitroute_rule_present", bool(prov["rules"]),
                role="gateway", name=prov["name"], family="ipv4", table=prov["table"],
            )  # fmt: skip
            tables[(prov["table"], "ipv4")] = prov
            if prov["netns"]:
                add("splitroute_netns_present", bool(prov["netns_present"]), netns=prov["netns"])
    for (table, family), state in sorted(tables.items(), key=lambda kv: (_int(kv[0][0], 0), kv[0])):
        add("splitroute_route_present", state["route"] is not None, table=table, family=family)
        add("splitroute_blackhole_armed", state["armed"], table=table, family=family)

    out = []
    for name, kind, text in _METRICS:
        if not samples[name]:
            continue
        out.append("# HELP %s %s" % (name, _escape_help(text)))
        out.append("# TYPE %s %s" % (name, kind))
        seen = set()
        for labels, value in samples[name]:
            rendered = ",".join('%s="%s"' % (key, _escape_label(val)) for key, val in labels.items())
            if rendered in seen:
                continue
            seen.add(rendered)
            out.append("%s{%s} %d" % (name, rendered, value))
    return "\n".join(out) + "\n"


class FilterModule:
    def filters(self):
        return {"status_report": status_report}
