# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""have / want / ops for ip rules and the routes of routing tables (module splitroute.vpn.policy_rule).

Messages are built with pyroute2's netlink classes and sent with ``nlm_request``, which
behaves the same in pyroute2 0.7 (Debian 12) and 0.9; the keyword helpers of
``IPRoute.rule()``/``route()`` differ between those versions.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import socket

from ansible_collections.splitroute.vpn.plugins.module_utils._netns import enter_netns, netns_exists
from ansible_collections.splitroute.vpn.plugins.module_utils._pyroute2 import (
    IPRoute,
    NetlinkError,
    collect,
    require_pyroute2,
)
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import check_ifname, check_netns_name

try:
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_DELRULE, RTM_NEWROUTE, RTM_NEWRULE
    from pyroute2.netlink.rtnl.fibmsg import fibmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
except ImportError:  # reported by require_pyroute2()
    fibmsg = rtmsg = None

ACTIONS = {"lookup": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
ROUTE_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8}
ROUTE_TYPE_NAMES = {v: k for k, v in ROUTE_TYPES.items()}
FIB_RULE_INVERT = 0x2
RT_TABLE_COMPAT = 252
RESERVED_TABLES = {"unspec": 0, "default": 253, "main": 254, "local": 255}
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
RT_TABLES = "/etc/iproute2/rt_tables"
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}\Z")
_FAMILIES = {"4": (socket.AF_INET,), "6": (socket.AF_INET6,), "both": (socket.AF_INET, socket.AF_INET6)}
_FAMILY_TEXT = {socket.AF_INET: "4", socket.AF_INET6: "6"}
_ALL_ONES = 0xFFFFFFFF
RULE_FIELDS = (
    "family", "priority", "invert", "src", "dst", "fwmark", "fwmask", "iif", "oif",
    "uidrange", "ipproto", "sport", "dport", "suppress_prefixlength", "action", "table",
)  # fmt: skip
ROUTE_FIELDS = ("family", "table", "dest", "type", "dev", "via", "metric")


class PolicyError(Exception):
    pass


# --------------------------------------------------------------------------- table names


def read_table_names(paths=None):
    """name -> id from rt_tables files (iproute2's own locations) plus the reserved names."""
    names = dict(RESERVED_TABLES)
    if paths is None:
        paths = ["/usr/share/iproute2/rt_tables", "/usr/lib/iproute2/rt_tables", RT_TABLES]
        paths += sorted(glob.glob("/usr/share/iproute2/rt_tables.d/*.conf"))
        paths += sorted(glob.glob("/etc/iproute2/rt_tables.d/*.conf"))
    for path in paths:
        try:
            with open(path) as fh:
                for line in fh:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) >= 2:
                        try:
                            names[fields[1]] = int(fields[0], 0)
                        except ValueError:
                            continue
        except OSError:
            continue
    return names


# --------------------------------------------------------------------------- normalisation helpers


def _int(value, what, lo=0, hi=_ALL_ONES):
    try:
        number = int(str(value), 0)
    except ValueError as exc:
        raise PolicyError("%s %r is not a number" % (what, value)) from exc
    if not lo <= number <= hi:
        raise PolicyError("%s %r is out of range %d-%d" % (what, value, lo, hi))
    return number


def _range(value, what, hi):
    """'a-b', 'a:b', a number, or {start, end} -> (start, end)."""
    if isinstance(value, dict):
        start, end = value.get("start"), value.get("end", value.get("start"))
    elif isinstance(value, int):
        start = end = value
    else:
        parts = re.split(r"[-:]", str(value).strip())
        if len(parts) > 2:
            raise PolicyError("%s %r is not a number or a range a-b" % (what, value))
        start, end = parts[0], parts[-1]
    start, end = _int(start, what, 0, hi), _int(end, what, 0, hi)
    if start > end:
        raise PolicyError("%s %r starts above its end" % (what, value))
    return (start, end)


def _net(value, what):
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise PolicyError(
            "%s %r is not a network address or CIDR (host bits must be zero): %s" % (what, value, exc)
        ) from exc
    return net


def _families(requested, *nets):
    versions = {n.version for n in nets if n is not None}
    if len(versions) > 1:
        raise PolicyError("addresses of both IPv4 and IPv6 in one entry: %s" % ", ".join(str(n) for n in nets if n))
    if versions:
        family = socket.AF_INET if versions.pop() == 4 else socket.AF_INET6
        if requested not in (None, "both") and _FAMILIES[requested] != (family,):
            raise PolicyError("family %s does not match the address %s" % (requested, [str(n) for n in nets if n]))
        return (family,)
    return _FAMILIES[requested or "both"]


class Normaliser:
    """Turns user dicts and kernel messages into the same comparable tuples."""

    def __init__(self, table_names):
        self.table_names = table_names

    def table(self, value, what="table"):
        if value is None:
            return None
        if isinstance(value, str) and not value.strip().isdigit():
            if value in self.table_names:
                return self.table_names[value]
            raise PolicyError(
                "%s %r is neither a number nor a name in rt_tables (add it with table_names)" % (what, value)
            )
        number = _int(value, what, 1, _ALL_ONES)
        return number

    # ---- rules
    def want_rules(self, items, partial=False):
        out = []
        for index, item in enumerate(items or []):
            where = "rules[%d]" % index
            try:
                out.extend(self._want_rule(item, partial))
            except PolicyError as exc:
                raise PolicyError("%s: %s" % (where, exc)) from exc
        return out

    def _want_rule(self, item, partial):
        src = _net(item["from"], "from") if item.get("from") not in (None, "all") else None
        dst = _net(item["to"], "to") if item.get("to") not in (None, "all") else None
        action = item.get("action") or "lookup"
        table = self.table(item.get("table"))
        if not partial:
            if item.get("priority") is None:
                raise PolicyError("priority is required: it is what makes a rule idempotent")
            if action == "lookup" and table is None:
                raise PolicyError("action lookup needs a table")
        if action != "lookup" and table is not None:
            raise PolicyError("table only goes with action lookup, not %s" % action)
        for key in ("iif", "oif"):
            if item.get(key) is not None:
                err = check_ifname(item[key], what=key)
                if err:
                    raise PolicyError(err)
        fwmark = _int(item["fwmark"], "fwmark") if item.get("fwmark") is not None else None
        fwmask = _int(item["fwmask"], "fwmask") if item.get("fwmask") is not None else None
        if fwmask is not None and fwmark is None:
            raise PolicyError("fwmask needs fwmark")
        if fwmark is not None and fwmask is None and not partial:
            fwmask = _ALL_ONES
        ipproto = None
        if item.get("ipproto") is not None:
            raw = str(item["ipproto"]).lower()
            ipproto = PROTOCOLS[raw] if raw in PROTOCOLS else _int(raw, "ipproto", 0, 255)
        ports = {}
        for key in ("sport", "dport"):
            if item.get(key) is not None:
                if ipproto not in (6, 17, 132):
                    raise PolicyError("%s needs ipproto tcp, udp or sctp" % key)
                ports[key] = _range(item[key], key, 65535)
        base = {
            "priority": _int(item["priority"], "priority", 0, _ALL_ONES) if item.get("priority") is not None else None,
            "invert": bool(item.get("invert")) if (item.get("invert") is not None or not partial) else None,
            "src": src,
            "dst": dst,
            "fwmark": fwmark,
            "fwmask": fwmask,
            "iif": item.get("iif"),
            "oif": item.get("oif"),
            "uidrange": _range(item["uidrange"], "uidrange", _ALL_ONES) if item.get("uidrange") is not None else None,
            "ipproto": ipproto,
            "sport": ports.get("sport"),
            "dport": ports.get("dport"),
            "suppress_prefixlength": (
                _int(item["suppress_prefixlength"], "suppress_prefixlength", 0, 128)
                if item.get("suppress_prefixlength") is not None
                else None
            ),
            "action": action if (item.get("action") is not None or not partial) else None,
            "table": table,
        }
        rules = []
        for family in _families(item.get("family"), src, dst):
            rule = dict(base, family=family)
            rule["src"] = str(src) if src is not None else None
            rule["dst"] = str(dst) if dst is not None else None
            rules.append(rule)
        return rules

    @staticmethod
    def have_rule(msg):
        attrs = dict(msg["attrs"])
        family = msg["family"]
        action = ACTION_NAMES.get(msg["action"], "other-%d" % msg["action"])
        table = attrs.get("FRA_TABLE", msg["table"]) if action == "lookup" else None

        def net(key, length):
            if key not in attrs:
                return None
            return str(ipaddress.ip_network("%s/%d" % (attrs[key], length), strict=False))

        def rng(key):
            if key not in attrs:
                return None
            start, end = (int(x) for x in str(attrs[key]).split(":"))
            return (start, end)

        suppress = attrs.get("FRA_SUPPRESS_PREFIXLEN")
        return {
            "family": family,
            "priority": attrs.get("FRA_PRIORITY", 0),
            "invert": bool(msg["flags"] & FIB_RULE_INVERT),
            "src": net("FRA_SRC", msg["src_len"]),
            "dst": net("FRA_DST", msg["dst_len"]),
            "fwmark": attrs.get("FRA_FWMARK"),
            "fwmask": attrs.get("FRA_FWMASK") if "FRA_FWMARK" in attrs else None,
            "iif": attrs.get("FRA_IIFNAME"),
            "oif": attrs.get("FRA_OIFNAME"),
            "uidrange": rng("FRA_UID_RANGE"),
            "ipproto": attrs.get("FRA_IP_PROTO"),
            "sport": rng("FRA_SPORT_RANGE"),
            "dport": rng("FRA_DPORT_RANGE"),
            "suppress_prefixlength": None if suppress in (None, _ALL_ONES) else suppress,
            "action": action,
            "table": table,
        }

    # ---- routes
    def want_routes(self, items, partial=False):
        out = []
        for index, item in enumerate(items or []):
            try:
                out.extend(self._want_route(item, partial))
            except PolicyError as exc:
                raise PolicyError("routes[%d]: %s" % (index, exc)) from exc
        return out

    def _want_route(self, item, partial):
        table = self.table(item.get("table"))
        if table is None:
            raise PolicyError("table is required")
        rtype = item.get("type") or "unicast"
        dest_raw = item.get("dest")
        if dest_raw is None:
            raise PolicyError("dest is required: default or a CIDR")
        dest = None if dest_raw == "default" else _net(dest_raw, "dest")
        via = None
        if item.get("via") is not None:
            try:
                via = ipaddress.ip_address(str(item["via"]))
            except ValueError as exc:
                raise PolicyError("via %r is not an address" % item["via"]) from exc
        if rtype != "unicast" and (via is not None or item.get("dev") is not None):
            raise PolicyError("a %s route takes no dev or via" % rtype)
        if rtype == "unicast" and via is None and item.get("dev") is None and not partial:
            raise PolicyError("a unicast route needs dev or via")
        if item.get("dev") is not None:
            err = check_ifname(item["dev"], what="dev")
            if err:
                raise PolicyError(err)
        via_net = ipaddress.ip_network(via) if via is not None else None
        routes = []
        for family in _families(item.get("family"), dest, via_net):
            metric = item.get("metric")
            if metric is None and not partial:
                metric = 1024 if family == socket.AF_INET6 else 0
            routes.append(
                {
                    "family": family,
                    "table": table,
                    "dest": str(dest) if dest is not None else ("0.0.0.0/0" if family == socket.AF_INET else "::/0"),
                    "type": rtype if (item.get("type") is not None or not partial) else None,
                    "dev": item.get("dev"),
                    "via": str(via) if via is not None else None,
                    "metric": _int(metric, "metric") if metric is not None else None,
                }
            )
        return routes

    @staticmethod
    def have_route(msg, ifnames):
        attrs = dict(msg["attrs"])
        family = msg["family"]
        rtype = ROUTE_TYPE_NAMES.get(msg["type"])
        if rtype is None:
            return None  # local, broadcast, multicast, ...: the kernel's, never ours
        dst = attrs.get("RTA_DST")
        zero = "0.0.0.0" if family == socket.AF_INET else "::"
        return {
            "family": family,
            "table": attrs.get("RTA_TABLE", msg["table"]),
            "dest": str(ipaddress.ip_network("%s/%d" % (dst or zero, msg["dst_len"]), strict=False)),
            "type": rtype,
            "dev": ifnames.get(attrs.get("RTA_OIF")) if rtype == "unicast" else None,
            "via": attrs.get("RTA_GATEWAY"),
            "metric": attrs.get("RTA_PRIORITY", 0),
        }


def key_of(entry, fields):
    return tuple((f, entry[f]) for f in fields)


def matches(have, pattern, fields):
    """True when every field the pattern gives equals the live entry's (None is a wildcard)."""
    return all(pattern[f] is None or pattern[f] == have[f] for f in fields)


def rule_text(rule):
    parts = ["ip -%s rule" % _FAMILY_TEXT[rule["family"]], "priority %s" % rule["priority"]]
    if rule["invert"]:
        parts.append("not")
    parts.append("from %s" % (rule["src"] or "all"))
    if rule["dst"]:
        parts.append("to %s" % rule["dst"])
    if rule["fwmark"] is not None:
        parts.append("fwmark %#x/%#x" % (rule["fwmark"], rule["fwmask"] if rule["fwmask"] is not None else _ALL_ONES))
    for key, word in (("iif", "iif"), ("oif", "oif")):
        if rule[key]:
            parts.append("%s %s" % (word, rule[key]))
    if rule["uidrange"]:
        parts.append("uidrange %d-%d" % rule["uidrange"])
    if rule["ipproto"] is not None:
        parts.append("ipproto %d" % rule["ipproto"])
    for key in ("sport", "dport"):
        if rule[key]:
            parts.append("%s %d-%d" % ((key,) + rule[key]))
    if rule["action"] == "lookup":
        parts.append("lookup %s" % rule["table"])
    else:
        parts.append(str(rule["action"]))
    if rule["suppress_prefixlength"] is not None:
        parts.append("suppress_prefixlength %d" % rule["suppress_prefixlength"])
    return " ".join(parts)


def route_text(route):
    parts = ["ip -%s route" % _FAMILY_TEXT[route["family"]], "table %s" % route["table"]]
    if route["type"] != "unicast":
        parts.append(route["type"])
    parts.append("default" if route["dest"] in ("0.0.0.0/0", "::/0") else route["dest"])
    if route["via"]:
        parts.append("via %s" % route["via"])
    if route["dev"]:
        parts.append("dev %s" % route["dev"])
    parts.append("metric %s" % route["metric"])
    return " ".join(parts)


# --------------------------------------------------------------------------- the resource


class PolicyRouting:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.state = self.params["state"]
        self.result = {"changed": False, "commands": []}

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result)

    def run(self):
        require_pyroute2(self.module)
        p = self.params
        if p["netns"]:
            err = check_netns_name(p["netns"])
            if not err and self.state == "deleted" and not netns_exists(p["netns"]):
                self.result["msg"] = "network namespace %s does not exist: nothing to remove" % p["netns"]
                return self.result
            err = err or enter_netns(p["netns"])
            if err:
                self.fail(err)
        try:
            table_lines = self._want_table_names()
            names = read_table_names()
            names.update({name: number for number, name in table_lines})
            norm = Normaliser(names)
            partial = self.state == "deleted"
            want_rules = norm.want_rules(p["rules"], partial=partial)
            self._want_rules_cache = want_rules
            want_routes = norm.want_routes(p["routes"], partial=partial)
            scope = self._scope(norm, want_routes)
        except PolicyError as exc:
            self.fail(str(exc))

        ipr = IPRoute()
        try:
            if hasattr(ipr, "status") and isinstance(ipr.status, dict):
                ipr.status.setdefault("nlm_generator", False)  # pyroute2 0.9.7's nlm_request needs it
            ifnames = {link["index"]: dict(link["attrs"]).get("IFLA_IFNAME") for link in collect(ipr.get_links())}
            have_rules = [Normaliser.have_rule(m) for m in collect(ipr.get_rules())]
            have_routes = []
            for table in sorted(scope["route_tables"]):
                for family in (socket.AF_INET, socket.AF_INET6):
                    for msg in collect(ipr.get_routes(family=family, table=table)):
                        route = Normaliser.have_route(msg, ifnames)
                        if route is not None and route["table"] == table:
                            have_routes.append(route)
            if self.state == "gathered":
                return self._gathered(have_rules, have_routes, scope)
            missing = sorted({r["dev"] for r in want_routes if r["dev"]} - set(ifnames.values()))
            if missing and self.state != "deleted":
                if not self.module.check_mode:
                    self.fail("interface %s does not exist" % ", ".join(missing))
                # check mode before the play creates the interface: report what would be added
                self.module.warn(
                    "interface %s does not exist yet; its routes are shown as they would be added" % ", ".join(missing)
                )
            del_rules, add_rules = self._plan(have_rules, want_rules, RULE_FIELDS, scope["rule"])
            want_routes = [_adopt_dev(w, have_routes) for w in want_routes]
            del_routes, add_routes = self._plan(have_routes, want_routes, ROUTE_FIELDS, scope["route"])
            rt_tables_change = self._plan_rt_tables(table_lines)
            ops = (
                [("del", "rule", r) for r in del_rules]
                + [("del", "route", r) for r in del_routes]
                + [("add", "route", r) for r in add_routes]
                + [("add", "rule", r) for r in add_rules]
            )
            self.result["commands"] = ["%s %s" % (op_text(op)) for op in ops]
            if rt_tables_change:
                self.result["commands"].append("write %s: %s" % (RT_TABLES, ", ".join(rt_tables_change[2])))
            self.result["changed"] = bool(ops or rt_tables_change)
            if self.module._diff:
                self.result["diff"] = self._diff(have_rules, have_routes, ops, scope, rt_tables_change)
            if self.result["changed"] and not self.module.check_mode:  # the one write point
                self._apply(ipr, ifnames, ops, rt_tables_change)
        finally:
            ipr.close()
        return self.result

    # ---- want
    def _want_table_names(self):
        lines = []
        for name, raw_number in sorted((self.params["table_names"] or {}).items()):
            if not _TABLE_NAME.match(str(name)) or name in RESERVED_TABLES:
                raise PolicyError("table name %r is invalid: a letter, then up to 31 letters, digits, _ or -" % name)
            number = _int(raw_number, "table id for %s" % name, 1, _ALL_ONES)
            if number in RESERVED_TABLES.values():
                raise PolicyError("table id %d is reserved" % number)
            lines.append((number, str(name)))
        return lines

    def _scope(self, norm, want_routes):
        raw = self.params["scope"] or {}
        tables = {norm.table(t, "scope.tables") for t in raw.get("tables") or []}
        prio = raw.get("priorities")
        prio_range = _range(prio, "scope.priorities", _ALL_ONES) if prio is not None else None
        if self.state == "overridden" and not tables and prio_range is None:
            raise PolicyError(
                "state=overridden needs scope (tables and/or priorities) so it never deletes what it does not own"
            )

        def rule_in_scope(rule):
            if prio_range is not None and not prio_range[0] <= rule["priority"] <= prio_range[1]:
                return False
            return not (tables and rule["table"] not in tables)

        has_scope = bool(tables) or prio_range is not None
        route_tables = set(tables) | {r["table"] for r in want_routes}
        return {
            "rule": rule_in_scope if has_scope else None,
            "route": (lambda route: route["table"] in tables) if tables else None,
            "route_tables": route_tables,
            "tables": tables,
            "priorities": prio_range,
        }

    # ---- plan
    def _plan(self, have, want, fields, in_scope):
        state = self.state
        have_keys = {key_of(h, fields) for h in have}
        want_keys = {key_of(w, fields) for w in want}
        if state == "deleted":
            if want:
                return [h for h in have if any(matches(h, w, fields) for w in want)], []
            return ([h for h in have if in_scope(h)] if in_scope else []), []
        add = []
        seen = set()
        for w in want:
            k = key_of(w, fields)
            if k not in have_keys and k not in seen:
                add.append(w)
                seen.add(k)
        if state == "merged":
            return [], add
        if state == "replaced":
            if fields is RULE_FIELDS:
                slots = {(w["family"], w["priority"]) for w in want}
                delete = [
                    h for h in have if (h["family"], h["priority"]) in slots and key_of(h, fields) not in want_keys
                ]
            else:
                slots = {(w["family"], w["table"], w["dest"]) for w in want}
                delete = [
                    h
                    for h in have
                    if (h["family"], h["table"], h["dest"]) in slots and key_of(h, fields) not in want_keys
                ]
            return delete, add
        # overridden: everything in scope that is not wanted goes
        delete = [h for h in have if in_scope is not None and in_scope(h) and key_of(h, fields) not in want_keys]
        return delete, add

    def _plan_rt_tables(self, lines):
        if not lines:
            return None
        try:
            with open(RT_TABLES) as fh:
                text = fh.read()
        except FileNotFoundError:
            text = ""
        current = {}
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                current[fields[1]] = fields[0]
        add = []
        for number, name in lines:
            if name in current:
                if int(current[name], 0) != number:
                    raise_msg = "table name %s is already id %s in %s, not %d" % (
                        name,
                        current[name],
                        RT_TABLES,
                        number,
                    )
                    self.fail(raise_msg)
                continue
            taken = [n for n, v in current.items() if _safe_int(v) == number]
            if taken:
                self.fail("table id %d is already named %s in %s" % (number, taken[0], RT_TABLES))
            add.append("%d\t%s" % (number, name))
        if not add:
            return None
        new = text if not text or text.endswith("\n") else text + "\n"
        return text, new + "\n".join(add) + "\n", add

    # ---- diff / gathered
    def _diff(self, have_rules, have_routes, ops, scope, rt_change):
        deleted = [o[2] for o in ops if o[0] == "del"]
        added_rules = [o[2] for o in ops if o[:2] == ("add", "rule")]
        added_routes = [o[2] for o in ops if o[:2] == ("add", "route")]
        rules_after = [r for r in have_rules if r not in deleted] + added_rules
        routes_after = [r for r in have_routes if r not in deleted] + added_routes
        # Show the rules in scope, or without a scope the rules at the priorities this run touches.
        if scope["rule"] is not None:
            shown = scope["rule"]
        else:
            slots = {(r["family"], r["priority"]) for r in deleted + added_rules if "priority" in r}
            slots |= {(r["family"], r["priority"]) for r in self._want_rules_cache}

            def shown(rule):
                return (rule["family"], rule["priority"]) in slots

        before = {
            "rules": sorted(rule_text(r) for r in have_rules if shown(r)),
            "routes": sorted(route_text(r) for r in have_routes),
        }
        after = {
            "rules": sorted(rule_text(r) for r in rules_after if shown(r)),
            "routes": sorted(route_text(r) for r in routes_after),
        }
        if rt_change:
            before["rt_tables"], after["rt_tables"] = rt_change[0], rt_change[1]
        return {"before": before, "after": after}

    def _gathered(self, have_rules, have_routes, scope):
        rules = [r for r in have_rules if scope["rule"] is None or scope["rule"](r)]
        self.result["gathered"] = {
            "rules": [_public_rule(r) for r in sorted(rules, key=lambda r: (r["priority"], r["family"]))],
            "routes": [_public_route(r) for r in have_routes],
        }
        return self.result

    # ---- apply
    def _apply(self, ipr, ifnames, ops, rt_change):
        index = {name: idx for idx, name in ifnames.items()}
        flags_new = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        flags_del = NLM_F_REQUEST | NLM_F_ACK
        done = []
        for op in ops:
            verb, kind, entry = op
            try:
                if kind == "rule":
                    msg = rule_msg(entry)
                    ipr.nlm_request(
                        msg,
                        msg_type=RTM_NEWRULE if verb == "add" else RTM_DELRULE,
                        msg_flags=flags_new if verb == "add" else flags_del,
                    )
                else:
                    msg = route_msg(entry, index)
                    ipr.nlm_request(
                        msg,
                        msg_type=RTM_NEWROUTE if verb == "add" else RTM_DELROUTE,
                        msg_flags=flags_new if verb == "add" else flags_del,
                    )
            except NetlinkError as exc:
                self.result["commands_done"] = done
                self.fail(
                    "the kernel refused %s %s: %s (the commands before it were applied: see commands_done)"
                    % (op_text(op) + (exc,))
                )
            done.append("%s %s" % op_text(op))
        if rt_change:
            new_text = rt_change[1]
            os.makedirs(os.path.dirname(RT_TABLES), exist_ok=True)
            tmp = RT_TABLES + ".splitroute-tmp"
            with open(tmp, "w") as fh:
                fh.write(new_text)
            os.chmod(tmp, 0o644)
            self.module.atomic_move(tmp, RT_TABLES)


def _adopt_dev(want, have_routes):
    """A route given by gateway alone gets its device from the kernel: take it from the live twin."""
    if want["dev"] is not None or want["via"] is None or want.get("type") not in (None, "unicast"):
        return want
    others = [f for f in ROUTE_FIELDS if f != "dev"]
    for have in have_routes:
        if all(have[f] == want[f] for f in others):
            return dict(want, dev=have["dev"])
    return want


def _safe_int(value):
    try:
        return int(value, 0)
    except ValueError:
        return None


def op_text(op):
    verb, kind, entry = op
    text = rule_text(entry) if kind == "rule" else route_text(entry)
    return verb, text


def _public_rule(rule):
    out = {k: v for k, v in rule.items() if v is not None and v is not False}
    out["family"] = _FAMILY_TEXT[rule["family"]]
    for key in ("uidrange", "sport", "dport"):
        if key in out:
            out[key] = "%d-%d" % out[key]
    out.setdefault("priority", 0)
    return out


def _public_route(route):
    out = {k: v for k, v in route.items() if v is not None}
    out["family"] = _FAMILY_TEXT[route["family"]]
    return out


def rule_msg(rule):
    msg = fibmsg()
    family = rule["family"]
    msg["family"] = family
    msg["action"] = ACTIONS.get(rule["action"], 1)
    msg["flags"] = FIB_RULE_INVERT if rule["invert"] else 0
    table = rule["table"] or 0
    msg["table"] = table if table < 256 else RT_TABLE_COMPAT
    attrs = [("FRA_PRIORITY", rule["priority"])]
    if rule["action"] == "lookup":
        attrs.append(("FRA_TABLE", table))
    for key, attr, length in (("src", "FRA_SRC", "src_len"), ("dst", "FRA_DST", "dst_len")):
        if rule[key]:
            net = ipaddress.ip_network(rule[key])
            msg[length] = net.prefixlen
            attrs.append((attr, str(net.network_address)))
    if rule["fwmark"] is not None:
        attrs.append(("FRA_FWMARK", rule["fwmark"]))
        attrs.append(("FRA_FWMASK", rule["fwmask"] if rule["fwmask"] is not None else _ALL_ONES))
    if rule["iif"]:
        attrs.append(("FRA_IIFNAME", rule["iif"]))
    if rule["oif"]:
        attrs.append(("FRA_OIFNAME", rule["oif"]))
    if rule["uidrange"]:
        attrs.append(("FRA_UID_RANGE", "%d:%d" % rule["uidrange"]))
    if rule["ipproto"] is not None:
        attrs.append(("FRA_IP_PROTO", rule["ipproto"]))
    if rule["sport"]:
        attrs.append(("FRA_SPORT_RANGE", "%d:%d" % rule["sport"]))
    if rule["dport"]:
        attrs.append(("FRA_DPORT_RANGE", "%d:%d" % rule["dport"]))
    if rule["suppress_prefixlength"] is not None:
        attrs.append(("FRA_SUPPRESS_PREFIXLEN", rule["suppress_prefixlength"]))
    msg["attrs"] = attrs
    return msg


def route_msg(route, ifindex):
    msg = rtmsg()
    net = ipaddress.ip_network(route["dest"])
    msg["family"] = route["family"]
    msg["dst_len"] = net.prefixlen
    table = route["table"]
    msg["table"] = table if table < 256 else RT_TABLE_COMPAT
    msg["proto"] = 3  # boot, as `ip route add`
    msg["type"] = ROUTE_TYPES[route["type"]]
    link_scope = route["type"] == "unicast" and not route["via"] and route["family"] == socket.AF_INET
    msg["scope"] = 253 if link_scope else 0
    attrs = [("RTA_TABLE", table), ("RTA_PRIORITY", route["metric"] or 0)]
    if net.prefixlen:
        attrs.append(("RTA_DST", str(net.network_address)))
    if route["via"]:
        attrs.append(("RTA_GATEWAY", route["via"]))
    if route["dev"] and route["type"] == "unicast":
        attrs.append(("RTA_OIF", ifindex[route["dev"]]))
    msg["attrs"] = attrs
    return msg
