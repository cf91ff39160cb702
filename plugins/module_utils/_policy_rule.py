# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""have / want / ops for ip rules and the routes of routing tables (module splitroute.vpn.policy_rule).

Messages are built with pyroute2's netlink classes and sent with ``nlm_request``, which
behaves the same in pyroute2 0.7 (Debian 12) and 0.9; the keyword helpers of
``IPRoute.rule()``/``route()`` differ between those versions (_releases).

A run never leaves a table worse than it found it: new routes go in before old ones go
(an atomic replace where one route takes another's place), and when the kernel refuses a
step, what was done is undone and the result is read back and compared with the start.
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
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    RESERVED_PRIORITIES,
    check_ifname,
    check_netns_name,
    check_priorities,
    parse_network,
    parse_next_hop,
    want_bool,
    want_dict,
    want_int,
    want_list,
    want_str,
)
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    RESERVED_TABLES as RESERVED_TABLE_IDS,
)

try:
    from pyroute2.netlink import NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST
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
RT_SCOPE_NOWHERE = 255
RTPROT_BOOT = 3
RESERVED_TABLES = {name: number for number, name in RESERVED_TABLE_IDS.items()}  # name -> id
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
RT_TABLES = "/etc/iproute2/rt_tables"
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}\Z")
_TABLE_ID = re.compile(r"^(?:0[xX][0-9A-Fa-f]{1,8}|[0-9]{1,10})\Z")
_FAMILIES = {"4": (socket.AF_INET,), "6": (socket.AF_INET6,), "both": (socket.AF_INET, socket.AF_INET6)}
_FAMILY_TEXT = {socket.AF_INET: "4", socket.AF_INET6: "6"}
_ALL_ONES = 0xFFFFFFFF
_IPV6_DEFAULT_METRIC = 1024  # what the kernel stores for an IPv6 route given metric 0
RULE_FIELDS = (
    "family", "priority", "invert", "src", "dst", "fwmark", "fwmask", "iif", "oif",
    "uidrange", "ipproto", "sport", "dport", "suppress_prefixlength", "action", "table",
)  # fmt: skip
ROUTE_FIELDS = ("family", "table", "dest", "type", "dev", "via", "metric")

# The options of one rule and one route, and the kind of value each takes (the module's
# DOCUMENTATION describes the same). The module passes them as they come (type raw), so
# a wrong type is reported here with its path, never converted or split.
_FAMILY_CHOICES = ("4", "6", "both")
RULE_OPTIONS = {
    "priority": "int",
    "family": _FAMILY_CHOICES,
    "from": "str",
    "to": "str",
    "fwmark": "number",
    "fwmask": "number",
    "iif": "str",
    "oif": "str",
    "uidrange": "range",
    "ipproto": "str_or_int",
    "sport": "range",
    "dport": "range",
    "invert": "bool",
    "suppress_prefixlength": "int",
    "action": tuple(ACTIONS),
    "table": "str_or_int",
}
ROUTE_OPTIONS = {
    "table": "str_or_int",
    "dest": "str",
    "family": _FAMILY_CHOICES,
    "type": tuple(ROUTE_TYPES),
    "dev": "str",
    "via": "str",
    "metric": "int",
}
SCOPE_OPTIONS = {"tables": "list", "priorities": "range"}


class PolicyError(Exception):
    pass


def _ok(pair):
    """The value of a (value, error) pair from _validate, or PolicyError."""
    value, error = pair
    if error:
        raise PolicyError(error)
    return value


def typed(item, options, what):
    """ITEM (a dict from the task) checked against OPTIONS: every known key, None when absent."""
    item = _ok(want_dict(item, what))
    unknown = sorted(str(k) for k in item if k not in options)
    if unknown:
        raise PolicyError("%s: unknown option %s (known: %s)" % (what, ", ".join(unknown), ", ".join(options)))
    out = {}
    for key, kind in options.items():
        value = item.get(key)
        path = "%s.%s" % (what, key)
        if value is None:
            out[key] = None
        elif isinstance(kind, tuple):  # choices; YAML gives family 4 as a number
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            value = _ok(want_str(value, path))
            if value not in kind:
                raise PolicyError("%s: must be one of %s, not %r" % (path, ", ".join(kind), value))
            out[key] = value
        elif kind == "str":
            out[key] = _ok(want_str(value, path))
        elif kind == "bool":
            out[key] = _ok(want_bool(value, path))
        elif kind in ("int", "number"):
            out[key] = _ok(want_int(value, path, 0, _ALL_ONES))
        elif kind == "list":
            out[key] = _ok(want_list(value, path))
        else:  # str_or_int, range: a string or a number
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise PolicyError("%s: must be a string or a number, not %s" % (path, type(value).__name__))
            out[key] = value
    return out


# --------------------------------------------------------------------------- table names


def _table_id(text):
    """An rt_tables id as iproute2 reads it (0x.. hex, else decimal), or None."""
    if not _TABLE_ID.match(text):
        return None
    number = int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    return number if number <= _ALL_ONES else None


def parse_rt_tables(text, path, warnings):
    """(name -> id text, id -> name) from one rt_tables file; odd lines are skipped with a warning."""
    names = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2 or _table_id(fields[0]) is None or not _TABLE_NAME.match(fields[1]):
            warnings.append("%s line %d is not 'ID NAME' and was skipped: %r" % (path, lineno, line[:80]))
            continue
        names[fields[1]] = _table_id(fields[0])
    return names


def _read_text(path):
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", errors="replace")


def read_table_names(paths=None, warnings=None):
    """name -> id from rt_tables files (iproute2's own locations) plus the reserved names."""
    warnings = [] if warnings is None else warnings
    names = dict(RESERVED_TABLES)
    if paths is None:
        paths = ["/usr/share/iproute2/rt_tables", "/usr/lib/iproute2/rt_tables", RT_TABLES]
        paths += sorted(glob.glob("/usr/share/iproute2/rt_tables.d/*.conf"))
        paths += sorted(glob.glob("/etc/iproute2/rt_tables.d/*.conf"))
    for path in paths:
        try:
            text = _read_text(path)
        except OSError:
            continue
        names.update(parse_rt_tables(text, path, warnings))
    return names


# --------------------------------------------------------------------------- normalisation helpers


def _int(value, what, lo=0, hi=_ALL_ONES):
    return _ok(want_int(value, what, lo, hi))


def _range(value, what, hi):
    """'a-b', 'a:b' or a number -> (start, end)."""
    if isinstance(value, int) and not isinstance(value, bool):
        start = end = value
    else:
        parts = re.split(r"[-:]", _ok(want_str(value, what)).strip())
        if len(parts) > 2:
            raise PolicyError("%s: %r is not a number or a range a-b" % (what, value))
        start, end = parts[0], parts[-1]
    start, end = _int(start, what, 0, hi), _int(end, what, 0, hi)
    if start > end:
        raise PolicyError("%s: %r starts above its end" % (what, value))
    return (start, end)


def _net(value, what):
    net, error = parse_network(value, what=what)
    if error:
        raise PolicyError(error + " (a network address or CIDR; host bits must be zero)")
    return net


def _families(requested, what, *nets):
    versions = {n.version for n in nets if n is not None}
    if len(versions) > 1:
        raise PolicyError(
            "%s: addresses of both IPv4 and IPv6 in one entry: %s" % (what, ", ".join(str(n) for n in nets if n))
        )
    if versions:
        family = socket.AF_INET if versions.pop() == 4 else socket.AF_INET6
        if requested not in (None, "both") and _FAMILIES[requested] != (family,):
            raise PolicyError(
                "%s.family: %s does not match the address %s" % (what, requested, [str(n) for n in nets if n])
            )
        return (family,)
    return _FAMILIES[requested or "both"]


def complete_rule(rule):
    """A rule pattern (state deleted) with the defaults a full rule gets."""
    out = dict(rule)
    if out["invert"] is None:
        out["invert"] = False
    if out["action"] is None:
        out["action"] = "lookup"
    if out["fwmark"] is not None and out["fwmask"] is None:
        out["fwmask"] = _ALL_ONES
    return out


def complete_route(route):
    """A route pattern (state deleted) with the defaults a full route gets."""
    out = dict(route)
    if out["type"] is None:
        out["type"] = "unicast"
    if out["metric"] is None:
        out["metric"] = _IPV6_DEFAULT_METRIC if out["family"] == socket.AF_INET6 else 0
    return out


def protected(entry, kind):
    """The kernel's own rules (priorities 0, 32766, 32767) and the routes of tables 0 and 253-255."""
    if kind == "rule":
        return entry["priority"] in RESERVED_PRIORITIES
    return entry["table"] in RESERVED_TABLE_IDS


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
                "%s: %r is neither a number nor a name in rt_tables (add it with table_names)" % (what, value)
            )
        return _int(value, what, 1, _ALL_ONES)

    # ---- rules
    def want_rules(self, items, partial=False):
        out = []
        for index, item in enumerate(_ok(want_list(items, "rules"))):
            out.extend(self._want_rule(typed(item, RULE_OPTIONS, "rules[%d]" % index), "rules[%d]" % index, partial))
        return out

    def _want_rule(self, item, where, partial):
        src = _net(item["from"], where + ".from") if item["from"] not in (None, "all") else None
        dst = _net(item["to"], where + ".to") if item["to"] not in (None, "all") else None
        action = item["action"] or "lookup"
        table = self.table(item["table"], where + ".table")
        if not partial:
            if item["priority"] is None:
                raise PolicyError("%s.priority: is required: it is what makes a rule idempotent" % where)
            if action == "lookup" and table is None:
                raise PolicyError("%s: action lookup needs a table" % where)
        if action != "lookup" and table is not None:
            raise PolicyError("%s: table only goes with action lookup, not %s" % (where, action))
        for key in ("iif", "oif"):
            if item[key] is not None:
                err = check_ifname(item[key], what="%s.%s" % (where, key))
                if err:
                    raise PolicyError(err)
        fwmark, fwmask = item["fwmark"], item["fwmask"]
        if fwmask is not None and fwmark is None:
            raise PolicyError("%s: fwmask needs fwmark" % where)
        if fwmark is not None and fwmask is None and not partial:
            fwmask = _ALL_ONES
        if fwmark == 0 and fwmask == 0:  # matches every packet: the kernel keeps no mark at all
            fwmark = fwmask = None
        ipproto = None
        if item["ipproto"] is not None:
            raw = str(item["ipproto"]).lower()
            ipproto = PROTOCOLS[raw] if raw in PROTOCOLS else _int(raw, where + ".ipproto", 0, 255)
        ports = {}
        for key in ("sport", "dport"):
            if item[key] is not None:
                if ipproto not in (6, 17, 132):
                    raise PolicyError("%s.%s: needs ipproto tcp, udp or sctp" % (where, key))
                ports[key] = _range(item[key], "%s.%s" % (where, key), 65535)
        base = {
            "priority": item["priority"],
            "invert": bool(item["invert"]) if (item["invert"] is not None or not partial) else None,
            "src": str(src) if src is not None else None,
            "dst": str(dst) if dst is not None else None,
            "fwmark": fwmark,
            "fwmask": fwmask,
            "iif": item["iif"],
            "oif": item["oif"],
            "uidrange": (
                _range(item["uidrange"], where + ".uidrange", _ALL_ONES) if item["uidrange"] is not None else None
            ),
            "ipproto": ipproto,
            "sport": ports.get("sport"),
            "dport": ports.get("dport"),
            "suppress_prefixlength": (
                _int(item["suppress_prefixlength"], where + ".suppress_prefixlength", 0, 128)
                if item["suppress_prefixlength"] is not None
                else None
            ),
            "action": action if (item["action"] is not None or not partial) else None,
            "table": table,
            "_where": where,
        }
        return [dict(base, family=family) for family in _families(item["family"], where, src, dst)]

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
        # The kernel sends no FRA_FWMARK for mark 0, only the mask (fwmark 0/0xffffffff: unmarked packets).
        fwmask = attrs.get("FRA_FWMASK")
        fwmark = attrs.get("FRA_FWMARK", 0 if fwmask else None)
        return {
            "family": family,
            "priority": attrs.get("FRA_PRIORITY", 0),
            "invert": bool(msg["flags"] & FIB_RULE_INVERT),
            "src": net("FRA_SRC", msg["src_len"]),
            "dst": net("FRA_DST", msg["dst_len"]),
            "fwmark": fwmark,
            "fwmask": fwmask if fwmark is not None else None,
            "iif": attrs.get("FRA_IIFNAME"),
            "oif": attrs.get("FRA_OIFNAME"),
            "uidrange": rng("FRA_UID_RANGE"),
            "ipproto": attrs.get("FRA_IP_PROTO"),
            "sport": rng("FRA_SPORT_RANGE"),
            "dport": rng("FRA_DPORT_RANGE"),
            "suppress_prefixlength": None if suppress in (None, _ALL_ONES) else suppress,
            "action": action,
            "table": table,
            "_proto": attrs.get("FRA_PROTOCOL"),
        }

    # ---- routes
    def want_routes(self, items, partial=False):
        out = []
        for index, item in enumerate(_ok(want_list(items, "routes"))):
            where = "routes[%d]" % index
            out.extend(self._want_route(typed(item, ROUTE_OPTIONS, where), where, partial))
        return out

    def _want_route(self, item, where, partial):
        table = self.table(item["table"], where + ".table")
        if table is None:
            raise PolicyError("%s.table: is required" % where)
        rtype = item["type"] or "unicast"
        if item["dest"] is None:
            raise PolicyError("%s.dest: is required: default or a CIDR" % where)
        dest = None if item["dest"] == "default" else _net(item["dest"], where + ".dest")
        dev = item["dev"]
        if dev is not None:
            err = check_ifname(dev, what=where + ".dev")
            if err:
                raise PolicyError(err)
        via = None
        if item["via"] is not None:
            via, scope_dev, error = parse_next_hop(item["via"], what=where + ".via")
            if error:
                raise PolicyError(error)
            if scope_dev is not None:
                if dev is not None and dev != scope_dev:
                    raise PolicyError(
                        "%s.via: %s names interface %s, but dev is %s" % (where, item["via"], scope_dev, dev)
                    )
                dev = scope_dev
            elif via.is_link_local and via.version == 6 and dev is None and not partial:
                raise PolicyError(
                    "%s.via: %s is link-local: give dev, or write it as %s%%INTERFACE" % (where, via, via)
                )
        if rtype != "unicast" and (via is not None or dev is not None):
            raise PolicyError("%s: a %s route takes no dev or via" % (where, rtype))
        if rtype == "unicast" and via is None and dev is None and not partial:
            raise PolicyError("%s: a unicast route needs dev or via" % where)
        via_net = ipaddress.ip_network(via) if via is not None else None
        routes = []
        for family in _families(item["family"], where, dest, via_net):
            metric = item["metric"]
            if metric is None and not partial:
                metric = 0
            if metric == 0 and family == socket.AF_INET6:
                metric = _IPV6_DEFAULT_METRIC  # the kernel stores IPv6 metric 0 as 1024
            routes.append(
                {
                    "family": family,
                    "table": table,
                    "dest": str(dest) if dest is not None else ("0.0.0.0/0" if family == socket.AF_INET else "::/0"),
                    "type": rtype if (item["type"] is not None or not partial) else None,
                    "dev": dev,
                    "via": str(via) if via is not None else None,
                    "metric": metric,
                    "_where": where,
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
            "_proto": msg["proto"],
            "_scope": msg["scope"],
        }


def key_of(entry, fields):
    return tuple((f, entry[f]) for f in fields)


def matches(have, pattern, fields):
    """True when every field the pattern gives equals the live entry's (None is a wildcard)."""
    return all(pattern[f] is None or pattern[f] == have[f] for f in fields)


def slot_of(route):
    """The kernel's identity of a route: a second route with these is refused with NLM_F_EXCL."""
    return (route["family"], route["table"], route["dest"], route["metric"])


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


class Refused(Exception):
    """A step the kernel refused, or a result that differs from the plan."""


class PolicyRouting:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.state = self.params["state"]
        self.result = {"changed": False, "commands": []}
        self._want_rules_cache = []

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result)

    def run(self):
        require_pyroute2(self.module)
        p = self.params
        if p["netns"] is not None:
            err = check_netns_name(p["netns"], "netns")
            if not err and self.state == "deleted" and not netns_exists(p["netns"]):
                self.result["msg"] = "network namespace %s does not exist: nothing to remove" % p["netns"]
                return self.result
            err = err or enter_netns(p["netns"])
            if err:
                self.fail(err)
        try:
            table_lines = self._want_table_names()
            warnings = []
            names = read_table_names(warnings=warnings)
            for warning in warnings:
                self.module.warn(warning)
            names.update({name: number for number, name in table_lines})
            norm = Normaliser(names)
            partial = self.state == "deleted"
            want_rules = norm.want_rules(p["rules"], partial=partial)
            self._want_rules_cache = want_rules
            want_routes = norm.want_routes(p["routes"], partial=partial)
            scope = self._scope(norm, want_routes)
            self._check_protected(want_rules, want_routes)
        except PolicyError as exc:
            self.fail(str(exc))

        ipr = IPRoute()
        try:
            if hasattr(ipr, "status") and isinstance(ipr.status, dict):
                ipr.status.setdefault("nlm_generator", False)  # pyroute2 0.9.7's nlm_request needs it
            ifnames = {link["index"]: dict(link["attrs"]).get("IFLA_IFNAME") for link in collect(ipr.get_links())}
            have_rules, have_routes = self._read(ipr, ifnames, scope["route_tables"])
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
            del_rules, add_rules = self._plan(have_rules, want_rules, RULE_FIELDS, scope["rule"], "rule")
            want_routes = [_adopt_dev(w, have_routes) for w in want_routes]
            del_routes, add_routes = self._plan(have_routes, want_routes, ROUTE_FIELDS, scope["route"], "route")
            rt_tables_change = self._plan_rt_tables(table_lines)
            ops = order_ops(del_rules, add_rules, del_routes, add_routes, have_routes)
            self.result["commands"] = [op_text(op) for op in ops]
            if rt_tables_change:
                self.result["commands"].append("write %s: %s" % (RT_TABLES, ", ".join(rt_tables_change[2])))
            self.result["changed"] = bool(ops or rt_tables_change)
            if self.module._diff:
                self.result["diff"] = self._diff(have_rules, have_routes, ops, scope, rt_tables_change)
            if self.result["changed"] and not self.module.check_mode:  # the one write point
                self._apply(ipr, ifnames, ops, rt_tables_change, (have_rules, have_routes, scope["route_tables"]))
        finally:
            ipr.close()
        return self.result

    # ---- have
    @staticmethod
    def _read(ipr, ifnames, route_tables):
        """The live rules (IPv4 and IPv6 only: the IPMR families are not ours) and routes of ROUTE_TABLES."""
        families = (socket.AF_INET, socket.AF_INET6)
        rules = [Normaliser.have_rule(m) for m in collect(ipr.get_rules()) if m["family"] in families]
        routes = []
        for table in sorted(route_tables):
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in collect(ipr.get_routes(family=family, table=table)):
                    route = Normaliser.have_route(msg, ifnames)
                    if route is not None and route["table"] == table:
                        routes.append(route)
        return rules, routes

    # ---- want
    def _want_table_names(self):
        lines = []
        raw = _ok(want_dict(self.params["table_names"], "table_names"))
        for name, raw_number in sorted(raw.items(), key=lambda kv: str(kv[0])):
            what = "table_names.%s" % name
            if not isinstance(name, str) or not _TABLE_NAME.match(name) or name in RESERVED_TABLES:
                raise PolicyError(
                    "table_names: table name %r is invalid: a letter, then up to 31 letters, digits, _ or -" % (name,)
                )
            number = _int(raw_number, what, 1, _ALL_ONES)
            if number in RESERVED_TABLE_IDS:
                raise PolicyError("%s: table id %d is reserved (%s)" % (what, number, RESERVED_TABLE_IDS[number]))
            lines.append((number, name))
        return lines

    def _scope(self, norm, want_routes):
        raw = typed(self.params["scope"], SCOPE_OPTIONS, "scope")
        deletes = self.state in ("overridden", "deleted")
        tables = set()
        for index, value in enumerate(raw["tables"] or []):
            what = "scope.tables[%d]" % index
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise PolicyError("%s: must be a string or a number, not %s" % (what, type(value).__name__))
            number = norm.table(value, what)
            if deletes and number in RESERVED_TABLE_IDS:
                raise PolicyError(
                    "%s: %r is the kernel's table %s; a scope of state %s never holds it "
                    "(list the route itself with state deleted to remove one of its routes)"
                    % (what, value, RESERVED_TABLE_IDS[number], self.state)
                )
            tables.add(number)
        prio = raw["priorities"]
        prio_range = _range(prio, "scope.priorities", _ALL_ONES) if prio is not None else None
        if deletes and prio_range is not None:
            error = check_priorities(prio_range[0], prio_range[1], "scope.priorities")
            if error:
                raise PolicyError(error)
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

    def _check_protected(self, want_rules, want_routes):
        """State replaced deletes what shares a listed entry's slot: never the kernel's own."""
        if self.state != "replaced":
            return
        for rule in want_rules:
            if protected(rule, "rule"):
                raise PolicyError(
                    "%s.priority: %d is the kernel's rule (%s); state replaced would delete it. Only state deleted "
                    "with that exact rule removes one of the kernel's rules"
                    % (rule["_where"], rule["priority"], RESERVED_PRIORITIES[rule["priority"]])
                )
        for route in want_routes:
            if protected(route, "route"):
                raise PolicyError(
                    "%s.table: %d is the kernel's table %s; state replaced would delete its routes. Only state "
                    "deleted with that exact route removes one of them"
                    % (route["_where"], route["table"], RESERVED_TABLE_IDS[route["table"]])
                )

    # ---- plan
    def _plan(self, have, want, fields, in_scope, kind):
        state = self.state
        have_keys = {key_of(h, fields) for h in have}
        want_keys = {key_of(w, fields) for w in want}
        if state == "deleted":
            if want:
                return [h for h in have if any(_deletes(h, w, fields, kind) for w in want)], []
            return ([h for h in have if in_scope(h) and not protected(h, kind)] if in_scope else []), []
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
            if kind == "rule":
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
            return [h for h in delete if not protected(h, kind)], add
        # overridden: everything in scope that is not wanted goes
        delete = [
            h
            for h in have
            if in_scope is not None and in_scope(h) and not protected(h, kind) and key_of(h, fields) not in want_keys
        ]
        return delete, add

    def _plan_rt_tables(self, lines):
        if not lines:
            return None
        try:
            with open(RT_TABLES, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raw = b""
        text = raw.decode("utf-8", errors="replace")
        current = parse_rt_tables(text, RT_TABLES, [])  # its odd lines were reported when the names were read
        add = []
        for number, name in lines:
            if name in current:
                if current[name] != number:
                    self.fail("table name %s is already id %s in %s, not %d" % (name, current[name], RT_TABLES, number))
                continue
            taken = [n for n, v in current.items() if v == number]
            if taken:
                self.fail("table id %d is already named %s in %s" % (number, taken[0], RT_TABLES))
            add.append("%d\t%s" % (number, name))
        if not add:
            return None
        new = raw if not raw or raw.endswith(b"\n") else raw + b"\n"
        new += ("\n".join(add) + "\n").encode()
        return text, new.decode("utf-8", errors="replace"), add, new

    # ---- diff / gathered
    def _diff(self, have_rules, have_routes, ops, scope, rt_change):
        deleted = [o[2] for o in ops if o[0] == "del"] + [o[3] for o in ops if o[0] == "replace"]
        added_rules = [o[2] for o in ops if o[:2] == ("add", "rule")]
        added_routes = [o[2] for o in ops if o[1] == "route" and o[0] in ("add", "replace")]
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
    def _apply(self, ipr, ifnames, ops, rt_change, start):
        index = {name: idx for idx, name in ifnames.items()}
        done = []
        try:
            for op in ops:
                try:
                    send(ipr, index, op[0], op[1], op[2])
                except NetlinkError as exc:
                    raise Refused("the kernel refused %s: %s" % (op_text(op), exc)) from exc
                done.append(op)
            differs = verify(ipr, ifnames, ops, start)
            if differs:
                raise Refused("the kernel's rules and routes differ from the plan after it was applied: %s" % differs)
        except Refused as exc:
            self.result["commands_done"] = [op_text(op) for op in done]
            self.fail("%s. %s" % (exc, restore(ipr, ifnames, ops, start)))
        if rt_change:
            os.makedirs(os.path.dirname(RT_TABLES), exist_ok=True)
            tmp = RT_TABLES + ".splitroute-tmp"
            with open(tmp, "wb") as fh:
                fh.write(rt_change[3])
            os.chmod(tmp, 0o644)
            self.module.atomic_move(tmp, RT_TABLES)


# --------------------------------------------------------------------------- ops, their order and their undoing


def _deletes(have, pattern, fields, kind):
    """State deleted: does PATTERN remove HAVE? The kernel's own entries go only when named exactly."""
    if not matches(have, pattern, fields):
        return False
    if not protected(have, kind):
        return True
    full = complete_rule(pattern) if kind == "rule" else complete_route(pattern)
    return all(_same_field(have, full, f) for f in fields)


def _same_field(live, expected, field):
    if live[field] == expected[field]:
        return True
    # a route given by gateway alone: the kernel fills in the device
    return field == "dev" and expected["dev"] is None and expected.get("via") is not None


def _equal(live, expected, fields):
    return all(_same_field(live, expected, f) for f in fields)


def order_ops(del_rules, add_rules, del_routes, add_routes, have_routes):
    """Operations (verb, kind, entry, replaced entry or None) in the order that keeps a table whole.

    A route that takes the place of the one live route of its slot (family, table, dest,
    metric) replaces it in one atomic request; routes into empty slots go in before any
    route goes; routes into slots that still hold others go in after those are deleted.
    New rules go in before old ones go.
    """
    live = {}
    for route in have_routes:
        live.setdefault(slot_of(route), []).append(route)
    deleted_by_slot, added_by_slot = {}, {}
    for route in del_routes:
        deleted_by_slot.setdefault(slot_of(route), []).append(route)
    for route in add_routes:
        added_by_slot.setdefault(slot_of(route), []).append(route)
    replaces, first, after, replaced = [], [], [], []
    for route in add_routes:
        slot = slot_of(route)
        if not live.get(slot):
            first.append(("add", "route", route, None))
        elif len(live[slot]) == 1 and len(deleted_by_slot.get(slot, [])) == 1 and len(added_by_slot[slot]) == 1:
            old = deleted_by_slot[slot][0]
            replaces.append(("replace", "route", route, old))
            replaced.append(old)
        else:
            after.append(("add", "route", route, None))
    deletes = [("del", "route", r, None) for r in del_routes if not any(r is o for o in replaced)]
    return (
        replaces
        + first
        + deletes
        + after
        + [("add", "rule", r, None) for r in add_rules]
        + [("del", "rule", r, None) for r in del_rules]
    )


_FLAGS = {
    "add": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL if fibmsg else 0,
    "replace": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE if fibmsg else 0,
    "restore": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE if fibmsg else 0,
    # IPv4 puts a route without APPEND in front of its slot's others; IPv6 would make APPEND multipath
    "restore4": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND if fibmsg else 0,
    "del": NLM_F_REQUEST | NLM_F_ACK if fibmsg else 0,
}


def send(ipr, index, verb, kind, entry):
    """One netlink request: VERB add, replace, restore (re-add what was there) or del."""
    if kind == "rule":
        msg_type = RTM_DELRULE if verb == "del" else RTM_NEWRULE
        msg = rule_msg(entry, restore=verb == "restore")
    else:
        msg_type = RTM_DELROUTE if verb == "del" else RTM_NEWROUTE
        msg = route_msg(entry, index, mode=verb)
        if verb == "restore" and entry["family"] == socket.AF_INET:
            verb = "restore4"
    ipr.nlm_request(msg, msg_type=msg_type, msg_flags=_FLAGS[verb])


def _touched(ops):
    added = [(o[1], o[2]) for o in ops if o[0] in ("add", "replace")]
    deleted = [(o[1], o[2]) for o in ops if o[0] == "del"] + [(o[1], o[3]) for o in ops if o[0] == "replace"]
    return added, deleted


def _fields(kind):
    return RULE_FIELDS if kind == "rule" else ROUTE_FIELDS


def _near(entry, kind):
    """What the kernel could confuse ENTRY with: the rules at its priority, the routes of its slot."""
    return (entry["family"], entry["priority"]) if kind == "rule" else slot_of(entry)


def verify(ipr, ifnames, ops, start):
    """Read back: every added entry is there, every deleted one gone, the others near them kept."""
    have_rules, have_routes, tables = start
    live_rules, live_routes = PolicyRouting._read(ipr, ifnames, tables)
    live = {"rule": live_rules, "route": live_routes}
    added, deleted = _touched(ops)
    problems = []
    for kind, entry in added:
        if not any(_equal(h, entry, _fields(kind)) for h in live[kind]):
            problems.append("%s is missing" % _text(kind, entry))
    added_keys = {key_of(e, _fields(k)) for k, e in added}
    for kind, entry in deleted:
        key = key_of(entry, _fields(kind))
        if key not in added_keys and any(key_of(h, _fields(kind)) == key for h in live[kind]):
            problems.append("%s is still there" % _text(kind, entry))
    near = {(k, _near(e, k)) for k, e in added + deleted}
    deleted_ids = {id(entry) for _kind, entry in deleted}
    for kind, kept in [("rule", r) for r in have_rules] + [("route", r) for r in have_routes]:
        if id(kept) in deleted_ids or (kind, _near(kept, kind)) not in near:
            continue
        key = key_of(kept, _fields(kind))
        if not any(key_of(h, _fields(kind)) == key for h in live[kind]):
            problems.append("%s went away" % _text(kind, kept))
    return "; ".join(problems)


def restore(ipr, ifnames, ops, start):
    """Put back what OPS deleted and take out what they added; say whether the start is back."""
    index = {name: idx for idx, name in ifnames.items()}
    have_rules, have_routes, tables = start
    added, deleted = _touched(ops)
    original = {
        "rule": {key_of(r, RULE_FIELDS) for r in have_rules},
        "route": {key_of(r, ROUTE_FIELDS) for r in have_routes},
    }
    live_rules, live_routes = PolicyRouting._read(ipr, ifnames, tables)
    live = {"rule": live_rules, "route": live_routes}
    steps = []
    position = {id(e): n for n, e in enumerate(have_rules + have_routes)}
    for kind, entry in sorted(deleted, key=lambda ke: position.get(id(ke[1]), 0)):  # back in their order
        if not any(key_of(h, _fields(kind)) == key_of(entry, _fields(kind)) for h in live[kind]):
            steps.append(("restore", kind, entry))
    for kind, entry in added:
        for h in live[kind]:
            if _equal(h, entry, _fields(kind)) and key_of(h, _fields(kind)) not in original[kind]:
                steps.append(("del", kind, h))
    errors = []
    for verb, kind, entry in steps:
        try:
            send(ipr, index, verb, kind, entry)
        except NetlinkError as exc:
            if not (verb == "restore" and getattr(exc, "code", None) == 17):  # EEXIST: it is there
                errors.append("%s %s: %s" % (verb, _text(kind, entry), exc))
    live_rules, live_routes = PolicyRouting._read(ipr, ifnames, tables)
    now = {
        "rule": {key_of(r, RULE_FIELDS) for r in live_rules},
        "route": {key_of(r, ROUTE_FIELDS) for r in live_routes},
    }
    differs = []
    for kind, entry in deleted:
        if key_of(entry, _fields(kind)) not in now[kind]:
            differs.append("%s is missing" % _text(kind, entry))
    for kind, entry in added:
        for key in now[kind] - original[kind]:
            if _equal(dict(key), entry, _fields(kind)):
                differs.append("%s is still there" % _text(kind, dict(key)))
    if not steps and not differs:
        return "Nothing had been changed: the rules and routes are as they were"
    if not differs and not errors:
        return "What had been done was undone: the rules and routes are as they were (%d step%s)" % (
            len(steps),
            "" if len(steps) == 1 else "s",
        )
    return "Undoing what had been done did not restore the start: %s" % "; ".join(errors + sorted(set(differs)))


def _text(kind, entry):
    return rule_text(entry) if kind == "rule" else route_text(entry)


def _adopt_dev(want, have_routes):
    """A route given by gateway alone gets its device from the kernel: take it from the live twin."""
    if want["dev"] is not None or want["via"] is None or want.get("type") not in (None, "unicast"):
        return want
    others = [f for f in ROUTE_FIELDS if f != "dev"]
    for have in have_routes:
        if all(have[f] == want[f] for f in others):
            return dict(want, dev=have["dev"])
    return want


def op_text(op):
    verb, kind, entry = op[:3]
    return "%s %s" % (verb, _text(kind, entry))


def _public_rule(rule):
    out = {k: v for k, v in rule.items() if v is not None and v is not False and not k.startswith("_")}
    out["family"] = _FAMILY_TEXT[rule["family"]]
    for key in ("uidrange", "sport", "dport"):
        if key in out:
            out[key] = "%d-%d" % out[key]
    out.setdefault("priority", 0)
    return out


def _public_route(route):
    out = {k: v for k, v in route.items() if v is not None and not k.startswith("_")}
    out["family"] = _FAMILY_TEXT[route["family"]]
    return out


def rule_msg(rule, restore=False):
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
    if restore and rule.get("_proto"):
        attrs.append(("FRA_PROTOCOL", rule["_proto"]))
    msg["attrs"] = attrs
    return msg


def route_msg(route, ifindex, mode="add"):
    """MODE add or replace (as `ip route add`), restore (as it was read), del (any protocol and scope)."""
    msg = rtmsg()
    net = ipaddress.ip_network(route["dest"])
    msg["family"] = route["family"]
    msg["dst_len"] = net.prefixlen
    table = route["table"]
    msg["table"] = table if table < 256 else RT_TABLE_COMPAT
    msg["type"] = ROUTE_TYPES[route["type"]]
    link_scope = route["type"] == "unicast" and not route["via"] and route["family"] == socket.AF_INET
    if mode == "del":
        msg["proto"], msg["scope"] = 0, RT_SCOPE_NOWHERE
    elif mode == "restore" and route.get("_proto") is not None:
        msg["proto"], msg["scope"] = route["_proto"], route["_scope"]
    else:
        msg["proto"], msg["scope"] = RTPROT_BOOT, 253 if link_scope else 0
    attrs = [("RTA_TABLE", table), ("RTA_PRIORITY", route["metric"] or 0)]
    if net.prefixlen:
        attrs.append(("RTA_DST", str(net.network_address)))
    if route["via"]:
        attrs.append(("RTA_GATEWAY", route["via"]))
    if route["dev"] and route["type"] == "unicast":
        attrs.append(("RTA_OIF", ifindex[route["dev"]]))
    msg["attrs"] = attrs
    return msg
