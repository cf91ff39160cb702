# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The status report's pure core: what `wg show all dump`, `ip -j link/rule/route`, `ip -j netns list` and
`nft -j list table` printed on a host, read into a report, its readable lines and its Prometheus metrics.

It serves the filter splitroute.vpn.status_report (playbooks/status.yml before the host program) and the
host program's `splitroute status` / `splitroute metrics` (_host_status.py), so it imports nothing of
ansible. The filter's documentation describes the report, the inputs and the settings.
"""

from __future__ import annotations

import json
import re
import time

from ._validate import want_dict, want_int, want_list, want_str

FAMILIES = ("ipv4", "ipv6")
_FAIL_CLOSED = ("blackhole", "unreachable", "prohibit")
_SET_SUFFIX = re.compile(r"^(?P<tunnel>.+)_(?P<kind>v4|v6|net4|net6)$")
_SET_ORDER = {"v4": 0, "v6": 1, "net4": 2, "net6": 3}
_SPECIAL_TABLES = ("local", "main", "default")

# C0 and C1 control characters, and the two Unicode line breaks that str.splitlines() also splits on.
# The kernel allows most of them in an interface name (not / : or white space), and `ip -j` prints all
# but \t \n \r \b \f as they are, which makes its output invalid JSON for a strict reader.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f]{1,16}|[0-9]{1,20})")
_MAX = 2**64 - 1

# What each input is called in the report (the nft tables' names come from the settings).
_COMMANDS = {
    "now": "date",
    "wg": "wg show all dump",
    "links": "ip link",
    "rules4": "ip -4 rule",
    "rules6": "ip -6 rule",
    "routes4": "ip -4 route",
    "routes6": "ip -6 route",
    "netns": "ip netns",
    "nft_client": "nft table inet %s",
    "nft_gateway": "nft table inet %s",
    "settings": "settings",
}
# The roles' nft tables (their plans name them; these are the defaults).
CLIENT_TABLE = "splitroute"
GATEWAY_TABLE = "splitroute_gateway"


class StatusError(ValueError):
    """The input is not a dict of command results (the filter raises it as AnsibleFilterError)."""


def redact_wg_dump(text):
    """`wg show all dump` with the private key of each interface line (field 2 of 5) and the preshared
    key of each peer line (field 3 of 9) replaced by (hidden): run on the output as soon as it is read,
    so no key is kept, printed or parsed."""
    out = []
    for line in (text or "").split("\n"):
        fields = line.split("\t")
        if len(fields) == 5 and fields[1] != "(none)":
            fields[1] = "(hidden)"
        elif len(fields) == 9 and fields[2] != "(none)":
            fields[2] = "(hidden)"
        out.append("\t".join(fields))
    return "\n".join(out)


_WG_INTERFACE = ("interface", "private key", "public key", "listen port", "fwmark")
_WG_PEER = ("interface", "public key", "preshared key", "endpoint", "allowed ips", "latest handshake",
            "rx bytes", "tx bytes", "persistent keepalive")  # fmt: skip


def _int(value, default=None):
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return default


def _printable(text, backslash="\\"):
    """TEXT with every control character written as \\xNN: a report line stays one line of plain text."""

    def escape(match):
        code = ord(match.group())
        return ("%sx%02x" if code < 256 else "%su%04x") % (backslash, code)

    return _CONTROL.sub(escape, text)


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value, limit=40):
    """A value as a note shows it: a string quoted with its control characters escaped, else its kind."""
    if not isinstance(value, str):
        return _kind(value)
    text = repr(value[: limit + 1])
    return text if len(value) <= limit else text[:-1] + "...'"


class _Bad(Exception):
    """One piece of command output (an entry, a line) that cannot be read; the message says why."""


class _Notes:
    """The pieces that were skipped: each note says which input, which piece and why."""

    def __init__(self):
        self.items = []

    def add(self, key, what, where, reason):
        self.items.append({"input": key, "text": ": ".join(p for p in (what, where, reason) if p)})


def _name(value):
    """A name (interface, namespace, table, set, chain): a string, not empty, no control characters."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise _Bad("must be a string, not %s" % _kind(value))
    if not value:
        raise _Bad("must not be empty")
    if _CONTROL.search(value):
        raise _Bad("%s has a control character" % _show(value))
    return value


def _token(value):
    """An address, a type, a key: a name without spaces."""
    value = _name(value)
    if any(c.isspace() for c in value):
        raise _Bad("%s has a space" % _show(value))
    return value


def _token_list(value):
    """A comma-separated list of tokens (a wg dump's allowed ips)."""
    return [_token(item) for item in value.split(",")]


def _number(value):
    """A number as ip and nft print it: an integer, or a string of decimal or 0x digits (fwmark "0x1")."""
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = int(value, 16) if value[:2] in ("0x", "0X") else int(value, 10)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("must be a number, not %s" % (_show(value) if isinstance(value, str) else _kind(value)))
    if not 0 <= value <= _MAX:
        raise _Bad("%d is out of range" % value)
    return value


def _table(value):
    """A routing table: its number or its name."""
    return str(_number(value)) if isinstance(value, int) and not isinstance(value, bool) else _name(value)


def _object(value):
    if not isinstance(value, dict):
        raise _Bad("must be an object, not %s" % _kind(value))
    return value


def _list(value):
    if not isinstance(value, list):
        raise _Bad("must be a list, not %s" % _kind(value))
    return value


def _strings(value):
    for index, item in enumerate(_list(value)):
        if not isinstance(item, str):
            raise _Bad("[%d] must be a string, not %s" % (index, _kind(item)))
    return value


def _set_type(value):
    """A set's type: one name, or a list of them for a concatenation."""
    if isinstance(value, list):
        return [_name(item) for item in value]
    return _name(value)


def _get(item, key, read, default=None, required=False, prefix=""):
    """Field KEY of one entry, read by READ; a missing field is DEFAULT (or an error when REQUIRED)."""
    if key not in item:
        if required:
            raise _Bad("%s%s: missing" % (prefix, key))
        return default
    try:
        return read(item[key])
    except _Bad as exc:
        raise _Bad("%s%s: %s" % (prefix, key, exc)) from None


def _stdout(raw, key, what, errors, notes, absent=None):
    """The output of one command, or None: a command that did not succeed is in ERRORS, a result that
    cannot be read in NOTES. ABSENT is the start of an error text that only means "not there" (returned
    as "absent", not an error)."""
    if key not in raw:
        errors.append("%s: not collected" % what)
        return None
    item = raw[key]
    if not isinstance(item, dict):
        notes.add(key, what, "", "the result must be an object, not %s" % _kind(item))
        return None
    if item.get("skipped") is True:
        errors.append("%s: skipped" % what)
        return None
    try:
        rc = _get(item, "rc", _number, required=True)
    except _Bad as exc:
        notes.add(key, what, "", str(exc))
        return None
    if rc != 0:
        text = "\n".join(item[k] for k in ("stderr", "msg") if isinstance(item.get(k), str)).strip()
        first = next((line.strip() for line in text.split("\n") if line.strip()), "")
        if absent and first.startswith(absent):
            return "absent"
        errors.append("%s: %s" % (what, _printable(first or "exit status %d" % rc)))
        return None
    stdout = item.get("stdout", "")
    if not isinstance(stdout, str):
        notes.add(key, what, "", "stdout: must be a string, not %s" % _kind(stdout))
        return None
    return stdout


def _load(text):
    """JSON text. ip prints most control characters in names as they are (invalid JSON for a strict
    reader, so one odd name would lose the whole output): they are allowed in strings here, and
    refused in each name that is read."""
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError) as exc:
        text = str(exc)
        raise _Bad("the output is not JSON (%s)" % _printable(text if len(text) <= 80 else text[:77] + "...")) from None


def _json_list(raw, key, what, errors, notes):
    """The list an `ip -j` command printed ([] when it printed nothing), or None."""
    stdout = _stdout(raw, key, what, errors, notes)
    if stdout is None:
        return None
    if not stdout.strip():
        return []
    try:
        data = _load(stdout)
        if not isinstance(data, list):
            raise _Bad("the output must be a list, not %s" % _kind(data))
    except _Bad as exc:
        notes.add(key, what, "", str(exc))
        return None
    return data


def _entries(data, key, what, notes, read, label=None):
    """READ each entry of a JSON list; an entry that cannot be read is noted and skipped (only that one).
    LABEL is (field, noun): the note names the entry by that field when it is a string."""
    out = []
    for index, item in enumerate(data or []):
        where = "[%d]" % index
        if label and isinstance(item, dict) and isinstance(item.get(label[0]), (str, int)):
            where += " (%s %s)" % (label[1], _show(item[label[0]]) if isinstance(item[label[0]], str) else
                                   item[label[0]])  # fmt: skip
        try:
            out.append(read(_object(item)))
        except _Bad as exc:
            notes.add(key, what, where, str(exc))
    return out


# ---------------------------------------------------------------- parsers


def parse_wg_dump(text, notes=None):
    """`wg show all dump`: interface lines (5 fields) and peer lines (9 fields), tab-separated.

    Field 2 of an interface line (private key) and field 3 of a peer line (preshared key) are never read.
    A line that cannot be read is skipped (and noted in NOTES).
    """
    notes = notes if notes is not None else _Notes()
    interfaces = {}

    def iface(name):
        return interfaces.setdefault(
            name, {"interface": name, "public_key": None, "listen_port": None, "fwmark": None, "peers": []}
        )

    def field(fields, names, index, read):
        try:
            return read(fields[index])
        except _Bad as exc:
            raise _Bad("%s: %s" % (names[index], exc)) from None

    def optional(word, read):
        return lambda value: None if value == word else read(value)

    # split on \n only: str.splitlines() would also split inside a name holding \x1c or \x85
    for number, line in enumerate((text or "").split("\n"), 1):
        if not line:
            continue
        fields = line.split("\t")
        try:
            if len(fields) == 5:
                names = _WG_INTERFACE
                name = field(fields, names, 0, _name)
                entry = {
                    "public_key": field(fields, names, 2, optional("(none)", _token)),
                    "listen_port": field(fields, names, 3, _number),
                    "fwmark": field(fields, names, 4, optional("off", _number)),
                }
                iface(name).update(entry)
            elif len(fields) == 9:
                names = _WG_PEER
                name = field(fields, names, 0, _name)
                peer = {
                    "public_key": field(fields, names, 1, _token),
                    "endpoint": field(fields, names, 3, optional("(none)", _token)),
                    "allowed_ips": field(fields, names, 4, optional("(none)", _token_list)) or [],
                    "last_handshake": field(fields, names, 5, _number),
                    "rx_bytes": field(fields, names, 6, _number),
                    "tx_bytes": field(fields, names, 7, _number),
                    "persistent_keepalive": field(fields, names, 8, optional("off", _number)),
                }  # fmt: skip
                iface(name)["peers"].append(peer)
            else:
                raise _Bad("%d fields, not 5 (an interface) or 9 (a peer)" % len(fields))
        except _Bad as exc:
            notes.add("wg", _COMMANDS["wg"], "line %d (interface %s)" % (number, _show(fields[0])), str(exc))
    return interfaces


def parse_nft_table(raw, key, name, errors, notes=None):
    """`nft -j list table inet NAME`: presence, sets with element counts, chains, and marks set per set."""
    notes = notes if notes is not None else _Notes()
    what = _COMMANDS[key] % name
    table = {"family": "inet", "name": name, "present": False, "sets": [], "chains": [], "marks": {}, "all_marks": [],
             "counters": {}}  # fmt: skip
    # nft's answer for a table that does not exist (not Ansible's for a program that does not)
    stdout = _stdout(raw, key, what, errors, notes, absent="Error: No such file or directory")
    if stdout == "absent":
        return table
    data = None
    if stdout is not None:
        try:
            data = _load(stdout)
            if not isinstance(data, dict):
                raise _Bad("the output must be an object, not %s" % _kind(data))
            _get(data, "nftables", _list, required=True)
        except _Bad as exc:
            notes.add(key, what, "", str(exc))
            data = None
    if data is None:
        # read nothing, so claim nothing: not "missing"
        table["error"] = "not read" if stdout is None else "unreadable output"
        return table
    all_marks = set()
    for index, item in enumerate(data["nftables"]):
        try:
            _object(item)
            if "table" in item:
                _get(item, "table", _object)
                table["present"] = True
            elif "set" in item:
                nft_set = _get(item, "set", _object)
                entry = {
                    "name": _get(nft_set, "name", _name, required=True, prefix="set."),
                    "type": _get(nft_set, "type", _set_type, prefix="set."),
                    "elements": len(_get(nft_set, "elem", _list, default=[], prefix="set.")),
                }
                table["sets"].append(entry)
            elif "counter" in item:
                counter = _get(item, "counter", _object)
                table["counters"][_get(counter, "name", _name, required=True, prefix="counter.")] = _get(
                    counter, "packets", _number, default=0, prefix="counter."
                )
            elif "chain" in item:
                table["chains"].append(_get(_get(item, "chain", _object), "name", _name, required=True,
                                            prefix="chain."))  # fmt: skip
            elif "rule" in item:
                rule = _get(item, "rule", _object)
                exprs = _get(rule, "expr", _list, default=[], prefix="rule.")
                refs, marks = [], []
                for number, expr in enumerate(exprs):
                    if not isinstance(expr, dict):
                        raise _Bad("rule.expr[%d]: must be an object, not %s" % (number, _kind(expr)))
                    match = expr.get("match")
                    if isinstance(match, dict) and isinstance(match.get("right"), str) and match["right"][:1] == "@":
                        refs.append(_name(match["right"][1:]))
                    mangle = expr.get("mangle")
                    if (
                        isinstance(mangle, dict)
                        and mangle.get("key") == {"meta": {"key": "mark"}}
                        and isinstance(mangle.get("value"), int)
                        and not isinstance(mangle.get("value"), bool)
                    ):
                        marks.append(_number(mangle["value"]))
                all_marks.update(marks)
                for ref in refs:
                    for mark in marks:
                        table["marks"].setdefault(ref, mark)
        except _Bad as exc:
            notes.add(key, what, "nftables[%d]" % index, str(exc))
    table["all_marks"] = sorted(all_marks)
    return table


def _read_rule(item, family):
    src = _get(item, "src", _token, "all")
    srclen = _get(item, "srclen", _number)
    if srclen is not None:
        src = "%s/%d" % (src, srclen)
    dst = _get(item, "dst", _token)
    dstlen = _get(item, "dstlen", _number)
    if dst is not None and dstlen is not None:
        dst = "%s/%d" % (dst, dstlen)
    rule = {
        "family": family,
        "priority": _get(item, "priority", _number, required=True),
        "from": src,
        "to": dst,
        "fwmark": _get(item, "fwmark", _number),
        "fwmask": _get(item, "fwmask", _number),
        "iif": _get(item, "iif", _name),
        "oif": _get(item, "oif", _name),
        "table": _get(item, "table", _table),
        "action": _get(item, "action", _token),
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
            words += [key, rule[key]]
    words += ["lookup", rule["table"]] if rule["table"] is not None else [rule["action"] or "?"]
    rule["text"] = " ".join(words)
    return rule


def parse_rules(data, family, notes=None, key=None):
    """`ip -j rule`'s entries; one that cannot be read is skipped (and noted in NOTES)."""
    notes = notes if notes is not None else _Notes()
    key = key or ("rules4" if family == "ipv4" else "rules6")
    return _entries(data, key, _COMMANDS[key], notes, lambda item: _read_rule(item, family), ("priority", "priority"))


def _read_route(item, family):
    return {
        "family": family,
        "table": _get(item, "table", _table, "main"),
        "dst": _get(item, "dst", _token, required=True),
        "type": _get(item, "type", _token, "unicast"),
        "dev": _get(item, "dev", _name),
        "gateway": _get(item, "gateway", _token),
        "metric": _get(item, "metric", _number, 0),
    }


def parse_routes(data, family, notes=None, key=None):
    """`ip -j route show table all`'s entries; one that cannot be read is skipped (and noted in NOTES)."""
    notes = notes if notes is not None else _Notes()
    key = key or ("routes4" if family == "ipv4" else "routes6")
    return _entries(data, key, _COMMANDS[key], notes, lambda item: _read_route(item, family), ("dst", "dst"))


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


def _read_link(item):
    return {
        "ifname": _get(item, "ifname", _name, required=True),
        "up": "UP" in _get(item, "flags", _strings, default=[]),
    }


def _links(data, notes):
    out = {}
    for link in _entries(data, "links", _COMMANDS["links"], notes, _read_link, ("ifname", "interface")):
        out[link["ifname"]] = {"exists": True, "up": link["up"]}
    return out


def _netns_entry(item):
    return _get(item, "name", _name, required=True)


def _netns(data, notes):
    return _entries(data, "netns", _COMMANDS["netns"], notes, _netns_entry, ("name", "namespace"))


def _setting(notes, value, what, read, default):
    """One setting read by READ (a _validate helper's (value, error)); None is DEFAULT, an error is noted."""
    if value is None:
        return default
    value, error = read(value, what)
    if error is None and isinstance(value, str) and _CONTROL.search(value):
        error = "%s: %s has a control character" % (what, _show(value))
    if error is not None:
        notes.add("settings", "settings", "", _printable(error))
        return default
    return value


def _settings(settings, notes):
    """The settings with the wrong ones noted and left at their defaults (a wrong entry of a list is left out)."""

    def text(value, what):
        return want_str(value, what, allow_empty=True)

    def number(value, what):
        if isinstance(value, str) and len(value) > 20:
            return None, "%s: must be a number, not %s" % (what, _show(value))
        return want_int(value, what, 0, _MAX)

    def names(value, what):
        out = []
        for index, item in enumerate(_setting(notes, value, what, want_list, [])):
            name = _setting(notes, item, "%s[%d]" % (what, index), text, "")
            if name:
                out.append(name)
        return out

    peers = []
    for index, item in enumerate(_setting(notes, settings.get("gateway_peers"), "gateway_peers", want_list, [])):
        what = "gateway_peers[%d]" % index
        if isinstance(item, (list, tuple)) and len(item) == 3:  # the playbook's [name, public_key, address]
            peer = dict(zip(("name", "public_key", "address"), item))
        elif isinstance(item, dict):
            peer = item
        else:
            notes.add("settings", "settings", "", "%s: must be a dict or a [name, public_key, address] list, not %s"
                      % (what, _kind(item)))  # fmt: skip
            continue
        fields = {k: _setting(notes, peer.get(k), "%s.%s" % (what, k), text, "") for k in
                  ("name", "public_key", "address")}  # fmt: skip
        if fields["name"]:
            peers.append(fields)
    marks = {}
    for key, value in _setting(notes, settings.get("client_marks"), "client_marks", want_dict, {}).items():
        what = "client_marks[%s]" % _show(key)
        name = _setting(notes, key, what, text, "")
        mark = _setting(notes, value, what, number, None)
        if name and mark:
            marks[name] = mark
    host = settings.get("host")
    if not isinstance(host, str):  # the host label: any text (escaped where it is written)
        host = _setting(notes, host, "host", text, "")
    return {
        "host": host,
        "client_table": _setting(notes, settings.get("client_table"), "client_table", text, "") or "splitroute",
        "client_priority_base": _setting(notes, settings.get("client_priority_base"), "client_priority_base",
                                         number, 1000),
        "client_tunnels": names(settings.get("client_tunnels"), "client_tunnels"),
        "client_marks": marks,
        "gateway_table": _setting(notes, settings.get("gateway_table"), "gateway_table", text, "")
        or "splitroute_gateway",
        "gateway_priority_base": _setting(notes, settings.get("gateway_priority_base"), "gateway_priority_base",
                                          number, 2000),
        "gateway_table_base": _setting(notes, settings.get("gateway_table_base"), "gateway_table_base", number, 200),
        "gateway_interface": _setting(notes, settings.get("gateway_interface"), "gateway_interface", text, "")
        or "wg0",
        "gateway_peers": peers,
        "gateway_providers": names(settings.get("gateway_providers"), "gateway_providers"),
    }  # fmt: skip


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
    base = settings["client_priority_base"]
    window = (base, base + 99)
    marks = set(nft["all_marks"])
    ours = [
        r
        for r in rules
        if window[0] <= r["priority"] <= window[1] or any(_mark_matches(r, m) for m in marks)
    ]  # fmt: skip
    # A set belongs to the tunnel whose mark its rule sets (the plan's marks, whatever the sets are
    # called), or else to the tunnel its name starts with (NAME_v4, NAME_v6, NAME_net4, NAME_net6).
    by_mark = {mark: name for name, mark in settings["client_marks"].items()}
    tunnels = {}
    for nft_set in nft["sets"]:
        match = _SET_SUFFIX.match(nft_set["name"])
        owner = by_mark.get(nft["marks"].get(nft_set["name"]))
        if owner is None and match:
            owner = match.group("tunnel")
        if owner is not None:
            tunnels.setdefault(owner, []).append(dict(nft_set, kind=match.group("kind") if match else None))
    for name in settings["client_tunnels"]:
        tunnels.setdefault(name, [])
    configured = nft["present"] or bool(ours)
    wg_by_name = {w["interface"]: w for w in wireguard}
    out_tunnels = []
    for name in sorted(tunnels):
        sets = sorted(tunnels[name], key=lambda s: (_SET_ORDER.get(s["kind"], len(_SET_ORDER)), s["name"]))
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
        # what each DNS bypass block rejected (splitroute_client_dns_bypass; packets, 0 when the part is off)
        "bypass": {k[7:]: v for k, v in sorted(nft.get("counters", {}).items()) if k.startswith("bypass_")},
        "priorities": "%d-%d" % window,
        "rules": [r["text"] for r in ours],
        "rule_entries": ours,
        "tunnels": out_tunnels,
        "other_tables": other_tables,
    }


def _peer_names(peers):
    """Public key to name and address to name, from the settings' peers."""
    by_key, by_address = {}, {}
    for peer in peers:
        if peer["public_key"]:
            by_key[peer["public_key"]] = peer["name"]
        if peer["address"]:
            by_address[peer["address"].split("/", maxsplit=1)[0]] = peer["name"]
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
    base = settings["gateway_priority_base"]
    table_base = settings["gateway_table_base"]
    window = (base, base + 199)
    ours = [r for r in rules if window[0] <= r["priority"] <= window[1]]
    configured = nft["present"] or bool(ours)
    ifname = settings["gateway_interface"]
    by_key, by_address = _peer_names(settings["gateway_peers"])
    wg = next((w for w in wireguard if w["interface"] == ifname), None)
    link = links.get(ifname, {"exists": False, "up": False})
    peers = []
    for peer in (wg or {}).get("peers", []):
        peers.append(dict(peer, name=_peer_name(peer, by_key, by_address)))

    providers = {}
    for index, name in enumerate(settings["gateway_providers"]):
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
        # what each DNS bypass block rejected of the peers' traffic (splitroute_gateway_dns_bypass)
        "bypass": {k[7:]: v for k, v in sorted(nft.get("counters", {}).items()) if k.startswith("bypass_")},
    }


def status_report(raw, settings=None):
    if not isinstance(raw, dict):
        raise StatusError("status_report expects a dict of command results by key, got %s" % type(raw).__name__)
    notes = _Notes()
    settings = _settings(settings if isinstance(settings, dict) else {}, notes)
    errors, problems = [], []

    now = None
    stdout = _stdout(raw, "now", _COMMANDS["now"], errors, notes)
    if stdout is not None:
        try:
            now = _number(stdout.strip())
        except _Bad as exc:
            notes.add("now", _COMMANDS["now"], "", "the output %s" % exc)
    if now is None:
        now = int(time.time())

    stdout = _stdout(raw, "wg", _COMMANDS["wg"], errors, notes)
    wg = parse_wg_dump(stdout, notes) if stdout is not None else {}
    links = _links(_json_list(raw, "links", _COMMANDS["links"], errors, notes), notes)
    rules, routes = [], []
    for family, suffix in (("ipv4", "4"), ("ipv6", "6")):
        key = "rules" + suffix
        rules += parse_rules(_json_list(raw, key, _COMMANDS[key], errors, notes), family, notes, key)
        key = "routes" + suffix
        routes += parse_routes(_json_list(raw, key, _COMMANDS[key], errors, notes), family, notes, key)
    netns = _netns(_json_list(raw, "netns", _COMMANDS["netns"], errors, notes), notes)

    wireguard = _wireguard(wg, links, now)
    client_nft = parse_nft_table(raw, "nft_client", settings["client_table"], errors, notes)
    gateway_nft = parse_nft_table(raw, "nft_gateway", settings["gateway_table"], errors, notes)
    client = _client(settings, client_nft, rules, routes, links, wireguard, problems)
    gateway = _gateway(settings, gateway_nft, rules, routes, links, wireguard, netns, problems)
    for tunnel in wireguard:
        if not tunnel["exists"]:
            problems.append("wireguard %s: wg lists it but this namespace has no such interface" % tunnel["interface"])

    lists = _lists_report(raw.get("lists"), now, problems, notes)
    failover = _failover_report(raw.get("failover"), problems, notes)
    report = {
        "host": settings["host"],
        "timestamp": now,
        "wireguard": wireguard,
        "lists": lists,
        "failover": failover,
        "client": client,
        "gateway": gateway,
        "netns": netns,
        "problems": problems,
        "errors": errors,
        "unreadable": notes.items,
    }
    report["lines"] = report_lines(report)
    report["metrics"] = render_metrics(report)
    return report


_LIST_NUMBERS = ("last_fetch", "last_success", "domains", "networks", "invalid", "conflicts", "failures")


def _lists_report(value, now, problems, notes):
    """The client's domain_sources as the host program's states give them (_host_status.list_states): each
    with tunnel, source (URL or path), ok (the last fetch was good or not modified), the numbers and the
    last error. A source that failed is a problem (its last good copy, if any, keeps routing)."""
    out = []
    for index, item in enumerate(value if isinstance(value, list) else []):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("tunnel"), str)
            or not isinstance(item.get("source"), str)
        ):
            notes.add("lists", "the lists' states", "entry %d" % index, "not a source's state")
            continue
        entry = {"tunnel": item["tunnel"], "source": item["source"]}
        for key in _LIST_NUMBERS:
            number = item.get(key)
            entry[key] = int(number) if isinstance(number, (int, float)) and not isinstance(number, bool) else 0
        error = item.get("last_error")
        entry["last_error"] = error if isinstance(error, str) else None
        entry["ok"] = bool(entry["last_fetch"]) and entry["last_error"] is None
        out.append(entry)
        if entry["last_error"] is not None:
            problems.append(
                "list %s of %s: %s; %s"
                % (
                    entry["source"],
                    entry["tunnel"],
                    entry["last_error"],
                    "its copy of %s keeps routing" % time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry["last_success"]))
                    if entry["last_success"]
                    else "no good copy yet",
                )
            )
    return out


def _failover_report(value, problems, notes):
    """The failover state splitroute health writes (_host_health): per tunnel with a fallback, the exit in use
    (None: the blackhole), its order, switches and the last reason; per exit, health, RTT (ms) and failures. A
    tunnel in its blackhole is a problem."""
    value = value if isinstance(value, dict) else {}
    groups, exits = [], []
    for name, item in sorted(_dict_items(value.get("groups"))):
        if not isinstance(item, dict) or not isinstance(name, str):
            notes.add("failover", "the failover state", "group %s" % _show(name), "not a group's state")
            continue
        exit_ = item.get("exit") if isinstance(item.get("exit"), str) else None
        switches = item.get("switches")
        groups.append({
            "tunnel": name,
            "kind": "provider" if item.get("kind") == "provider" else "tunnel",
            "exit": exit_,
            "switches": switches if isinstance(switches, int) and not isinstance(switches, bool) else 0,
            "since": item.get("since") if isinstance(item.get("since"), (int, float)) else None,
            "reason": item.get("reason") if isinstance(item.get("reason"), str) else "",
        })  # fmt: skip
        if exit_ is None:
            problems.append(
                "%s %s: no exit is healthy, its traffic is blackholed (%s)"
                % (groups[-1]["kind"], name, groups[-1]["reason"])
            )
    for name, item in sorted(_dict_items(value.get("exits"))):
        if not isinstance(item, dict) or not isinstance(name, str):
            notes.add("failover", "the failover state", "exit %s" % _show(name), "not an exit's state")
            continue
        rtt = item.get("rtt")
        failures = item.get("failures")
        exits.append({
            "name": name,
            "healthy": item.get("healthy") is True,
            "known": item.get("healthy") is not None,
            "rtt_ms": round(rtt * 1000) if isinstance(rtt, (int, float)) and not isinstance(rtt, bool) else None,
            "failures": failures if isinstance(failures, int) and not isinstance(failures, bool) else 0,
            "reason": item.get("reason") if isinstance(item.get("reason"), str) else "",
        })  # fmt: skip
    endpoints = []
    for name, item in sorted(_dict_items(value.get("endpoints"))):
        if not isinstance(item, dict) or not isinstance(name, str) or not isinstance(item.get("host"), str):
            notes.add("failover", "the failover state", "endpoint %s" % _show(name), "not an endpoint's state")
            continue
        changes = item.get("changes")
        looked_up = item.get("looked_up")
        endpoints.append({
            "tunnel": name,
            "host": item["host"],
            "current": item.get("current") if isinstance(item.get("current"), str) else None,
            "looked_up": looked_up if isinstance(looked_up, (int, float)) and not isinstance(looked_up, bool) else None,
            "changes": changes if isinstance(changes, int) and not isinstance(changes, bool) else 0,
            "error": item.get("error") if isinstance(item.get("error"), str) else None,
        })  # fmt: skip
        if endpoints[-1]["error"]:
            problems.append("tunnel %s: its endpoint name: %s" % (name, endpoints[-1]["error"]))
    return {"groups": groups, "exits": exits, "endpoints": endpoints}


def _dict_items(value):
    return list(value.items()) if isinstance(value, dict) else []


def _failover_lines(failover, now):
    lines = []
    for group in failover["groups"]:
        since = _age(max(now - int(group["since"]), 0)) if group["since"] else "never"
        lines.append(
            "  failover %s: by %s since %s, %d switch%s (%s)"
            % (
                group["tunnel"], group["exit"] or "its BLACKHOLE (no exit is healthy)", since, group["switches"],
                "" if group["switches"] == 1 else "es", _printable(group["reason"]),
            )
        )  # fmt: skip
    for exit_ in failover["exits"]:
        state = "healthy" if exit_["healthy"] else ("DOWN" if exit_["known"] else "not checked yet")
        rtt = ", probe %d ms" % exit_["rtt_ms"] if exit_["rtt_ms"] is not None else ""
        reason = "" if exit_["healthy"] else ", last check: %s" % _printable(exit_["reason"])
        lines.append("  exit %s: %s%s, %d failed checks%s" % (exit_["name"], state, rtt, exit_["failures"], reason))
    for entry in failover.get("endpoints", []):
        looked = (
            _age(max(now - int(entry["looked_up"]), 0)) if entry["looked_up"] else "not yet (its handshake is fresh)"
        )
        lines.append(
            "  endpoint of %s: %s at %s, looked up again %s, %d change%s%s"
            % (
                entry["tunnel"], entry["host"], entry["current"] or "(none)", looked, entry["changes"],
                "" if entry["changes"] == 1 else "s", ", last error: %s" % entry["error"] if entry["error"] else "",
            )
        )  # fmt: skip
    return lines


def _list_text(entry, now):
    fetched = _age(max(now - entry["last_fetch"], 0) if entry["last_fetch"] else None)
    good = _age(max(now - entry["last_success"], 0) if entry["last_success"] else None)
    state = "ok" if entry["ok"] else "FAILING" if entry["last_fetch"] else "not fetched yet"
    text = "  list %s (%s): %s, %d domains, %d networks, %d invalid lines, %d conflicts, fetched %s, good %s" % (
        entry["source"], entry["tunnel"], state,
        entry["domains"], entry["networks"], entry["invalid"], entry["conflicts"], fetched, good,
    )  # fmt: skip
    if entry["last_error"]:
        text += ", last error: %s" % entry["last_error"]
    return text


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


def _count(items, noun, none=None):
    if not items and none:
        return none
    return "%d %s%s" % (len(items), noun, "" if len(items) == 1 else "s")


def report_lines(report):
    now = report["timestamp"]
    client, gateway = report["client"], report["gateway"]
    lines = [
        "%s: client %s, gateway %s, %s (at %s UTC)"
        % (
            report["host"] or "host",
            "configured" if client["configured"] else "not configured",
            "configured" if gateway["configured"] else "not configured",
            _count(report["problems"], "problem", "no problems")
            + ("" if not report["unreadable"] else ", %s skipped" % _count(report["unreadable"], "unreadable piece")),
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
        for entry in report.get("lists", []):
            lines.append(_list_text(entry, now))
        lines.extend(_failover_lines(report.get("failover") or {"groups": [], "exits": []}, now))
        if any(client.get("bypass", {}).values()):
            lines.append(
                "  dns bypass rejected: %s (packets)" % ", ".join("%s %d" % kv for kv in client["bypass"].items())
            )
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
        if any(gateway.get("bypass", {}).values()):
            lines.append(
                "  dns bypass rejected: %s (packets)" % ", ".join("%s %d" % kv for kv in gateway["bypass"].items())
            )
        if not client["configured"]:  # (on a host with both, under the client: one list of groups and exits)
            lines.extend(_failover_lines(report.get("failover") or {"groups": [], "exits": []}, now))

    others = [w for w in report["wireguard"] if w["interface"] not in {t["name"] for t in client["tunnels"]}]
    if gateway["configured"]:
        others = [w for w in others if w["interface"] != gateway["interface"]]
    for wg in others:
        lines.append("other WireGuard interface %s: %s" % (wg["interface"], _wg_text(wg)))
    for problem in report["problems"]:
        lines.append("PROBLEM: %s" % problem)
    for error in report["errors"]:
        lines.append("could not read: %s" % error)
    for note in report["unreadable"]:
        lines.append("unreadable: %s" % note["text"])
    # every name in them was read without control characters; the host label and the settings' names
    # were not, and a report line must stay one line of text
    return [_printable(line) for line in lines]


# ---------------------------------------------------------------- Prometheus text format

_METRICS = (
    ("splitroute_status_timestamp_seconds", "gauge", "When the status was read (Unix time on the host)."),
    ("splitroute_client_configured", "gauge", "1 when the client role's nft table or rules are on the host."),
    ("splitroute_gateway_configured", "gauge", "1 when the gateway role's nft table or rules are on the host."),
    ("splitroute_problems", "gauge", "Number of problems the status report found."),
    ("splitroute_status_unreadable", "gauge", "Number of pieces of an input that could not be read (skipped)."),
    ("splitroute_nft_table_present", "gauge", "1 when the role's nftables table exists."),
    ("splitroute_tunnel_up", "gauge", "1 when the tunnel's interface exists and is up."),
    ("splitroute_tunnel_peers", "gauge", "Number of WireGuard peers of the interface."),
    ("splitroute_tunnel_last_handshake_seconds", "gauge", "Latest handshake with any peer (Unix time, 0 = never)."),
    (
        "splitroute_tunnel_handshake_age_seconds",
        "gauge",
        "Seconds from the latest handshake with any peer to the status read (no series: never).",
    ),
    ("splitroute_tunnel_rx_bytes", "counter", "Bytes received from all peers of the interface."),
    ("splitroute_tunnel_tx_bytes", "counter", "Bytes sent to all peers of the interface."),
    ("splitroute_peer_last_handshake_seconds", "gauge", "Latest handshake with the peer (Unix time, 0 = never)."),
    (
        "splitroute_peer_handshake_age_seconds",
        "gauge",
        "Seconds from the latest handshake with the peer to the status read (no series: never).",
    ),
    ("splitroute_peer_rx_bytes", "counter", "Bytes received from the peer."),
    ("splitroute_peer_tx_bytes", "counter", "Bytes sent to the peer."),
    ("splitroute_set_elements", "gauge", "Number of elements in the nftables set."),
    ("splitroute_rules", "gauge", "Number of ip rules of the role (by priority range or mark)."),
    ("splitroute_rule_present", "gauge", "1 when an ip rule leads the tunnel's or provider's traffic to its table."),
    ("splitroute_route_present", "gauge", "1 when the table has a default route that is not fail-closed."),
    ("splitroute_blackhole_armed", "gauge", "1 when the table has a blackhole (fail-closed) default route."),
    ("splitroute_netns_present", "gauge", "1 when the provider's network namespace exists."),
    ("splitroute_list_ok", "gauge", "1 when the list's last fetch or read was good (or not modified)."),
    ("splitroute_list_last_fetch_seconds", "gauge", "The list's last fetch or read (Unix time, 0 = never)."),
    ("splitroute_list_last_success_seconds", "gauge", "The list's last good fetch or read (Unix time, 0 = never)."),
    ("splitroute_list_domains", "gauge", "Domains in the list's last good copy."),
    ("splitroute_list_networks", "gauge", "Networks in the list's last good copy."),
    ("splitroute_list_invalid_lines", "gauge", "Invalid lines in the list's last fetched body (never written)."),
    ("splitroute_list_conflicts", "gauge", "The list's domains an earlier tunnel has (they go to that tunnel)."),
    ("splitroute_list_failures", "gauge", "Failed fetches or reads of the list since its last good one."),
    (
        "splitroute_failover_exit",
        "gauge",
        "1 for the exit a tunnel with a fallback uses now (exit=\"\": the blackhole).",
    ),
    (
        "splitroute_failover_switches_total",
        "counter",
        "Exit changes of a tunnel with a fallback since splitroute health started.",
    ),
    ("splitroute_exit_healthy", "gauge", "1 when the exit passed its health check (splitroute health's hysteresis)."),
    ("splitroute_exit_probe_rtt_milliseconds", "gauge", "Round-trip time of the exit's last good probe."),
    ("splitroute_exit_check_failures", "gauge", "Failed health checks of the exit since splitroute health started."),
    (
        "splitroute_endpoint_changes_total",
        "counter",
        "Times a tunnel's endpoint name was found at a new address and the peer moved there.",
    ),
    ("splitroute_endpoint_resolves", "gauge", "0 when the last lookup of the tunnel's endpoint name found nothing."),
    (
        "splitroute_dns_bypass_rejected_total",
        "counter",
        "Packets a DNS bypass block rejected (block: dot, doh, quic; the roles' dns_bypass).",
    ),
)


def _escape_label(value):
    """A label value in the text format: backslash, quote and newline escaped as the format says, and any
    other control character written as the text \\xNN (its backslash escaped: the format has no escape
    for them, and a raw one must not reach the textfile)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return _printable(text, backslash="\\\\")


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
    for key in _COMMANDS:
        add("splitroute_status_unreadable", sum(1 for n in report["unreadable"] if n["input"] == key), what=key)
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
        if wg["handshake_age"] is not None:
            add("splitroute_tunnel_handshake_age_seconds", wg["handshake_age"], interface=name)
        add("splitroute_tunnel_rx_bytes", wg["rx_bytes"], interface=name)
        add("splitroute_tunnel_tx_bytes", wg["tx_bytes"], interface=name)
        for peer in wg["peers"]:
            labels = {"interface": name, "peer": peer["public_key"]}
            if gateway["configured"] and name == gateway["interface"]:
                labels["name"] = peer_names.get(peer["public_key"], "")
            else:
                labels["name"] = ""
            add("splitroute_peer_last_handshake_seconds", peer["last_handshake"], **labels)
            if peer["last_handshake"]:
                age = max(report["timestamp"] - peer["last_handshake"], 0)
                add("splitroute_peer_handshake_age_seconds", age, **labels)
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
    failover = report.get("failover") or {"groups": [], "exits": []}
    for group in failover["groups"]:
        add("splitroute_failover_exit", 1, tunnel=group["tunnel"], exit=group["exit"] or "")
        add("splitroute_failover_switches_total", group["switches"], tunnel=group["tunnel"])
    for exit_ in failover["exits"]:
        add("splitroute_exit_healthy", exit_["healthy"], exit=exit_["name"])
        if exit_["rtt_ms"] is not None:
            add("splitroute_exit_probe_rtt_milliseconds", exit_["rtt_ms"], exit=exit_["name"])
        add("splitroute_exit_check_failures", exit_["failures"], exit=exit_["name"])
    for role in ("client", "gateway"):
        for block, packets in (report.get(role) or {}).get("bypass", {}).items():
            add("splitroute_dns_bypass_rejected_total", packets, role=role, block=block)
    for entry in failover.get("endpoints", []):
        add("splitroute_endpoint_changes_total", entry["changes"], tunnel=entry["tunnel"], name=entry["host"])
        add("splitroute_endpoint_resolves", entry["error"] is None, tunnel=entry["tunnel"], name=entry["host"])
    for entry in report.get("lists", []):
        labels = {"tunnel": entry["tunnel"], "source": entry["source"]}
        add("splitroute_list_ok", entry["ok"], **labels)
        add("splitroute_list_last_fetch_seconds", entry["last_fetch"], **labels)
        add("splitroute_list_last_success_seconds", entry["last_success"], **labels)
        add("splitroute_list_domains", entry["domains"], **labels)
        add("splitroute_list_networks", entry["networks"], **labels)
        add("splitroute_list_invalid_lines", entry["invalid"], **labels)
        add("splitroute_list_conflicts", entry["conflicts"], **labels)
        add("splitroute_list_failures", entry["failures"], **labels)

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
