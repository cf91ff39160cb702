# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Logic of splitroute.vpn.netns_veth: a network namespace joined to another one by a veth pair.

Read the live state (have), normalise the request (want), compute the operations
and run them in one place, guarded by check mode. Works with pyroute2 0.7 and
0.9: only IPRoute() and its link/addr/route/get_* calls, get_netnsid() and
pyroute2.netns.create/remove are used. Sockets and /proc/sys accesses for a
named namespace are made after setns() into it on the calling thread, which
then returns to its own namespace, so nothing here ever creates a namespace
as a side effect (pyroute2's NetNS/IPRoute(netns=...) would).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import ipaddress
import os
import re
import socket
import tempfile

from ansible_collections.splitroute.vpn.plugins.module_utils._netns import CLONE_NEWNET, netns_path, not_a_netns
from ansible_collections.splitroute.vpn.plugins.module_utils._pyroute2 import (
    IPRoute,
    NetlinkError,
    collect,
    pyroute2,
    require_pyroute2,
)
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    check_ifname,
    check_netns_name,
    parse_address,
    parse_interface_address,
    parse_network,
)

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_BOOT = 3
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
# Routes the module may remove from a veth end: those an administrator or this
# module made. Kernel (connected), RA, DHCP and routing-daemon routes are never touched.
PURGEABLE_PROTOCOLS = (RTPROT_BOOT, RTPROT_STATIC)
VETH_DEFAULT_MTU = 1500
IPV6_MIN_MTU = 1280
ETC_NETNS = "/etc/netns"
RESOLV_MODE = 0o644
DIR_MODE = 0o755
MAX_NAMESERVERS = 3  # glibc reads at most three

_SYSCTL_COMPONENT = re.compile(r"^[A-Za-z0-9_/:+-]+\Z")
_RESOLV_WORD = re.compile(r"^[^\s#;]+\Z")


@functools.cache
def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd):
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name):
    """Run the body with this thread inside network namespace NAME (None: stay where we are)."""
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def _errtext(exc):
    code = getattr(exc, "code", None)
    if isinstance(exc, NetlinkError) and isinstance(code, int):
        return "%s (netlink error %d)" % (os.strerror(code), code)
    return str(exc)


def _addr_key(iface):
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def _addr_list(ifaces):
    return [str(i) for i in sorted(ifaces, key=_addr_key)]


def _route_key(route):
    return (route["dest"].version, route["dest"], route["metric"])


def _route_view(route):
    return {
        "dest": str(route["dest"]),
        "via": str(route["via"]) if route["via"] is not None else None,
        "dev": route["dev"],
        "metric": route["metric"],
    }


def _routes_view(routes):
    return [_route_view(r) for r in sorted(routes, key=lambda r: (r["dest"].version, str(r["dest"]), r["metric"]))]


def _sysctl_norm(value):
    return " ".join(str(value).split())


class _Side:
    """One of the two namespaces: 'host' (peer_netns, or ours when None) or 'ns' (the managed one)."""

    def __init__(self, label, netns):
        self.label = label
        self.netns = netns
        self._ipr = None

    @property
    def where(self):
        return "namespace %r" % self.netns if self.netns else "the host namespace"

    def ip(self, rest):
        return ("ip -n %s %s" % (self.netns, rest)) if self.netns else ("ip %s" % rest)

    @property
    def ipr(self):
        if self._ipr is None:
            with in_netns(self.netns):
                self._ipr = IPRoute()
        return self._ipr

    def close(self):
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def index(self, ifname):
        for link in collect(self.ipr.get_links()):
            if link.get_attr("IFLA_IFNAME") == ifname:
                return link["index"]
        raise OSError("interface %r not found in %s" % (ifname, self.where))


class _Op:
    __slots__ = ("args", "kind", "text")

    def __init__(self, kind, text, **args):
        self.kind = kind
        self.text = text
        self.args = args


class NetnsVeth:
    """have / want / ops for one namespace and its veth pair."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.errors = []

    # ------------------------------------------------------------------ want
    def _err(self, msg):
        self.errors.append(msg)

    def _want(self):
        p = self.params
        name = p["name"]
        self._err_if(check_netns_name(name, "name"))
        peer = p["peer_netns"]
        if peer is not None:
            self._err_if(check_netns_name(peer, "peer_netns"))
            if peer == name:
                self._err("peer_netns must differ from name (%r): the pair joins two namespaces" % name)
        want = {"name": name, "peer": peer, "state": p["state"], "purge_addresses": p["purge_addresses"]}
        veth = p["veth"]
        want["veth"] = None
        if veth is not None:
            want["veth"] = self._want_veth(veth)
        if p["state"] == "present":
            ns_end = want["veth"]["ns_name"] if want["veth"] else None
            host_end = want["veth"]["host_name"] if want["veth"] else None
            want["routes"] = self._want_routes(p["routes"], "routes", ns_end)
            want["host_routes"] = self._want_routes(p["host_routes"], "host_routes", host_end)
            want["sysctls"] = self._want_sysctls(p["sysctls"])
            want["resolv_conf"] = self._want_resolv(p["resolv_conf"], name)
        if self.errors:
            self.module.fail_json(msg="invalid arguments: " + "; ".join(self.errors))
        return want

    def _err_if(self, msg):
        if msg:
            self._err(msg)

    def _want_veth(self, veth):
        out = {"host_name": veth["host_name"], "ns_name": veth["ns_name"], "mtu": veth["mtu"]}
        for key in ("host_name", "ns_name"):
            self._err_if(check_ifname(veth[key], "veth.%s" % key))
            if veth[key] == "lo":
                self._err("veth.%s cannot be 'lo'" % key)
        seen = {}
        for key in ("host_addresses", "ns_addresses"):
            ifaces = []
            for raw in veth[key] or []:
                iface, error = parse_interface_address(raw, "veth.%s entry" % key)
                if error:
                    self._err(error)
                    continue
                if iface.network.prefixlen == 0:
                    self._err("veth.%s entry %r has prefix length 0" % (key, raw))
                    continue
                if iface in ifaces:
                    self._err("veth.%s lists %s twice" % (key, iface))
                    continue
                if iface.ip in seen:
                    self._err("address %s is on both ends (veth.%s and veth.%s)" % (iface.ip, seen[iface.ip], key))
                    continue
                seen[iface.ip] = key
                ifaces.append(iface)
            out[key] = ifaces
        mtu = veth["mtu"]
        if mtu is not None:
            if not 68 <= mtu <= 65535:
                self._err("veth.mtu %d is out of range 68-65535" % mtu)
            elif mtu < IPV6_MIN_MTU and any(i.version == 6 for i in out["host_addresses"] + out["ns_addresses"]):
                self._err(
                    "veth.mtu %d is below %d, where the kernel disables IPv6, but IPv6 addresses are listed"
                    % (mtu, IPV6_MIN_MTU)
                )
        return out

    def _want_routes(self, routes, what, default_dev):
        if routes is None:
            return None
        out = []
        keys = set()
        for pos, item in enumerate(routes):
            label = "%s[%d]" % (what, pos)
            via = None
            if item["via"] is not None:
                via, error = parse_address(item["via"], what="%s.via" % label)
                if error:
                    self._err(error)
                    continue
            raw_dest = str(item["dest"]).strip()
            if raw_dest == "default":
                if via is None:
                    self._err("%s: dest 'default' needs via (or write 0.0.0.0/0 or ::/0 to pick the family)" % label)
                    continue
                dest = ipaddress.ip_network("0.0.0.0/0" if via.version == 4 else "::/0")
            else:
                dest, error = parse_network(raw_dest, what="%s.dest" % label)
                if error:
                    self._err(error + " (give the network address, e.g. 10.1.0.0/24, or 'default')")
                    continue
            if via is not None and via.version != dest.version:
                self._err("%s: via %s is not IPv%d like dest %s" % (label, via, dest.version, dest))
                continue
            dev = item["dev"] or default_dev
            if dev is None:
                self._err("%s: dev is required when veth is not given" % label)
                continue
            error = check_ifname(dev, "%s.dev" % label)
            if error:
                self._err(error)
                continue
            metric = item["metric"]
            if metric is None:
                metric = 0 if dest.version == 4 else 1024  # the kernel's own defaults
            elif not 0 <= metric <= 0xFFFFFFFF:
                self._err("%s: metric %d is out of range" % (label, metric))
                continue
            route = {"dest": dest, "via": via, "dev": dev, "metric": metric}
            if _route_key(route) in keys:
                self._err("%s: %s metric %d is listed twice" % (label, dest, metric))
                continue
            keys.add(_route_key(route))
            out.append(route)
        return out

    def _want_sysctls(self, sysctls):
        if sysctls is None:
            return None
        out = {}
        for key, raw in sysctls.items():
            parts = str(key).split(".")
            if len(parts) < 2 or parts[0] != "net" or not all(_SYSCTL_COMPONENT.match(c) for c in parts):
                self._err(
                    "sysctls key %r is not allowed: only net.* keys (per network namespace), in dotted form, "
                    "with '/' for a dot inside an interface name" % key
                )
                continue
            if any(c.replace("/", ".") in (".", "..") for c in parts):
                self._err("sysctls key %r is invalid" % key)
                continue
            if isinstance(raw, (dict, list, float)) or raw is None:
                self._err("sysctls value for %r must be a string or an integer, got %r" % (key, raw))
                continue
            value = _sysctl_norm(("1" if raw else "0") if isinstance(raw, bool) else raw)
            if not value:
                self._err("sysctls value for %r is empty" % key)
                continue
            out[key] = value
        return out

    def _want_resolv(self, resolv, name):
        if resolv is None:
            return None
        if resolv["content"] is not None:
            content = resolv["content"]
            if content and not content.endswith("\n"):
                content += "\n"
            return content
        lines = ["# Managed by splitroute.vpn.netns_veth: DNS for network namespace %s" % name]
        servers = resolv["nameservers"] or []
        for server in servers:
            addr, error = parse_address(server, what="resolv_conf.nameservers entry")
            if error:
                self._err(error)
                continue
            lines.append("nameserver %s" % addr)
        if len(servers) > MAX_NAMESERVERS:
            self.module.warn(
                "resolv_conf lists %d nameservers; the C library uses the first %d" % (len(servers), MAX_NAMESERVERS)
            )
        for key in ("search", "options"):
            words = resolv[key] or []
            for word in words:
                if not _RESOLV_WORD.match(str(word)):
                    self._err("resolv_conf.%s entry %r is invalid (one word, no spaces or comments)" % (key, word))
            if words:
                lines.append("%s %s" % (key, " ".join(str(w) for w in words)))
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ have
    def _read_side(self, side, exists):
        """Links (by name), addresses (by index) and main-table unicast routes of one namespace."""
        out = {"links": {}, "addrs": {}, "routes": []}
        if not exists:
            return out
        names = {}
        for link in collect(side.ipr.get_links()):
            info = {
                "index": link["index"],
                "name": link.get_attr("IFLA_IFNAME"),
                "kind": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
                "mtu": link.get_attr("IFLA_MTU"),
                "up": bool(link["flags"] & IFF_UP),
                "link": link.get_attr("IFLA_LINK"),
                "link_netnsid": link.get_attr("IFLA_LINK_NETNSID"),
            }
            out["links"][info["name"]] = info
            names[info["index"]] = info["name"]
        for msg in collect(side.ipr.get_addr()):
            ip = msg.get_attr("IFA_LOCAL") if msg["family"] == socket.AF_INET else None
            ip = ip or msg.get_attr("IFA_ADDRESS")
            if ip is None:
                continue
            iface = ipaddress.ip_interface("%s/%d" % (ip, msg["prefixlen"]))
            out["addrs"].setdefault(msg["index"], []).append(iface)
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in collect(side.ipr.get_routes(family=family)):
                table = msg.get_attr("RTA_TABLE") or msg["table"]
                if table != RT_TABLE_MAIN or msg["type"] != RTN_UNICAST or msg.get_attr("RTA_MULTIPATH"):
                    continue
                dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
                via = msg.get_attr("RTA_GATEWAY")
                out["routes"].append(
                    {
                        "dest": ipaddress.ip_network("%s/%d" % (dst, msg["dst_len"]), strict=False),
                        "via": ipaddress.ip_address(via) if via else None,
                        "dev": names.get(msg.get_attr("RTA_OIF")),
                        "metric": msg.get_attr("RTA_PRIORITY") or 0,
                        "proto": msg["proto"],
                    }
                )
        return out

    def _nsid(self, side, target_path):
        """The id SIDE's namespace uses for the namespace at TARGET_PATH (None if not assigned)."""
        fd = os.open(target_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            reply = side.ipr.get_netnsid(fd=fd)
        finally:
            os.close(fd)
        nsid = (reply or {}).get("nsid")
        return nsid if isinstance(nsid, int) and nsid >= 0 else None

    def _read_sysctls(self, want, ns_end_exists):
        """Current values; a key whose file is missing is an error unless it is about the ns end yet to be made."""
        values = {}
        ns_end = want["veth"]["ns_name"]
        with in_netns(want["name"] if self.ns_exists else None):
            for key in want["sysctls"]:
                path = "/proc/sys/" + "/".join(c.replace("/", ".") for c in key.split("."))
                try:
                    with open(path) as fh:
                        current = _sysctl_norm(fh.read())
                    # A namespace yet to be made starts from its own defaults, not from ours.
                    values[key] = current if self.ns_exists else None
                    continue
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self._err("cannot read sysctl %s: %s" % (key, exc))
                    continue
                parts = key.split(".")
                about_new_end = (
                    len(parts) >= 5 and parts[1] in ("ipv4", "ipv6") and parts[2] in ("conf", "neigh")
                    and parts[3].replace("/", ".") == ns_end and not ns_end_exists
                )  # fmt: skip
                default = "/proc/sys/net/%s/%s/default/%s" % (parts[1], parts[2], "/".join(parts[4:]))
                if about_new_end and os.path.exists(default):
                    values[key] = None
                else:
                    self._err("sysctl %s does not exist in network namespace %s" % (key, want["name"]))
        return values

    def _read_resolv(self, name):
        path = os.path.join(ETC_NETNS, name, "resolv.conf")
        out = {"dir": os.path.dirname(path), "path": path, "dir_exists": os.path.isdir(os.path.dirname(path))}
        out["content"] = out["mode"] = None
        out["others"] = []
        if out["dir_exists"]:
            out["others"] = sorted(e for e in os.listdir(out["dir"]) if e != "resolv.conf")
        try:
            with open(path, errors="replace") as fh:
                out["content"] = fh.read()
            out["mode"] = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            pass
        return out

    def _have(self, want):
        name, peer = want["name"], want["peer"]
        # A stale /run/netns/NAME (a plain file, not a mounted namespace) cannot be entered: say what it
        # is and how to remove it, before anything is read or changed. state=absent refuses it too: it is
        # not a namespace this module made, and removing files it did not make is not its job.
        for what, ns in (("name", name), ("peer_netns", peer)):
            error = not_a_netns(ns) if ns is not None else None
            if error:
                self.module.fail_json(msg="%s %r: %s" % (what, ns, error))
        self.ns_exists = os.path.exists(netns_path(name))
        peer_exists = peer is None or os.path.exists(netns_path(peer))
        if not peer_exists and want["state"] == "present":
            self.module.fail_json(msg="peer_netns %r does not exist (no %s)" % (peer, netns_path(peer)))
        have = {"ns": self._read_side(self.ns, self.ns_exists), "host": self._read_side(self.host, peer_exists)}
        have["resolv"] = self._read_resolv(name)
        veth = want["veth"]
        have["host_end"] = have["host"]["links"].get(veth["host_name"]) if veth else None
        have["ns_end"] = have["ns"]["links"].get(veth["ns_name"]) if veth else None
        have["paired"] = False
        if veth and have["host_end"] and have["ns_end"] and peer_exists:
            here = netns_path(peer) if peer else "/proc/thread-self/ns/net"
            host, nse = have["host_end"], have["ns_end"]
            have["paired"] = (
                host["kind"] == "veth" and nse["kind"] == "veth"
                and host["link"] == nse["index"] and nse["link"] == host["index"]
                and host["link_netnsid"] is not None and nse["link_netnsid"] is not None
                and host["link_netnsid"] == self._nsid(self.host, netns_path(name))
                and nse["link_netnsid"] == self._nsid(self.ns, here)
            )  # fmt: skip
        if want["state"] == "present" and want["sysctls"]:
            have["sysctls"] = self._read_sysctls(want, have["ns_end"] is not None)
        return have

    def _check_pair(self, want, have):
        """Refuse to adopt interfaces that are not this pair (clear errors, nothing changed yet)."""
        veth = want["veth"]
        host, nse = have["host_end"], have["ns_end"]
        host_desc = "interface %r in %s" % (veth["host_name"], self.host.where)
        ns_desc = "interface %r in namespace %r" % (veth["ns_name"], want["name"])
        for desc, link, opt in ((host_desc, host, "host_name"), (ns_desc, nse, "ns_name")):
            if link is not None and link["kind"] != "veth":
                self._err(
                    "%s already exists and is a %s interface, not a veth: refusing to take it over; "
                    "pick another veth.%s" % (desc, link["kind"] or "physical", opt)
                )
        if self.errors:
            return
        if host is not None and not have["paired"]:
            self._err(
                "%s is a veth whose peer is not %r in namespace %r: refusing to take it over; "
                "pick another veth.host_name" % (host_desc, veth["ns_name"], want["name"])
            )
        elif nse is not None and host is None:
            self._err(
                "%s is a veth whose peer is not %r in %s: refusing to take it over; "
                "remove it (state=absent) or pick another veth.ns_name" % (ns_desc, veth["host_name"], self.host.where)
            )
        for what, side, end, key, link in (
            ("routes", self.ns, veth["ns_name"], "ns_addresses", nse),
            ("host_routes", self.host, veth["host_name"], "host_addresses", host),
        ):
            # The end's addresses after this run: a gateway outside all of them is refused by the
            # kernel (No route to host) after the namespace and the pair were made.
            end_addrs = list(veth[key])
            if link is not None and not want["purge_addresses"]:
                end_addrs += have[side.label]["addrs"].get(link["index"], [])
            for pos, route in enumerate(want[what] or []):
                if route["dev"] not in (end, "lo") and route["dev"] not in have[side.label]["links"]:
                    self._err("%s: dev %r does not exist in %s" % (what, route["dev"], side.where))
                via = route["via"]
                if route["dev"] != end or via is None or (via.version == 6 and via.is_link_local):
                    continue
                if not any(a.version == via.version and via in a.network for a in end_addrs):
                    self._err(
                        "%s[%d]: via %s is in no network of veth.%s (%s): the kernel would refuse the route "
                        "(no route to host); add an address in its network to veth.%s"
                        % (what, pos, via, key, ", ".join(map(str, end_addrs)) or "none", key)
                    )

    # ------------------------------------------------------------------ views
    def _end_view(self, link, addrs, want_addrs=()):
        if link is None:
            return None
        keep = [a for a in addrs if not (a.version == 6 and a.ip.is_link_local) or a in want_addrs]
        return {
            "name": link["name"],
            "mtu": link["mtu"],
            "state": "up" if link["up"] else "down",
            "addresses": _addr_list(keep),
        }

    def _managed_routes(self, side_have, end, want_routes):
        keys = {_route_key(r) for r in want_routes}
        return [
            r
            for r in side_have["routes"]
            if _route_key(r) in keys or (r["dev"] == end and r["proto"] in PURGEABLE_PROTOCOLS)
        ]

    def _resolv_view(self, content, mode):
        if content is None:
            return None
        return {
            "path": os.path.join(ETC_NETNS, self.params["name"], "resolv.conf"),
            "content": content,
            "mode": "%04o" % mode,
        }

    def _before(self, want, have):
        veth = want["veth"]
        view = {"namespace": want["name"], "exists": self.ns_exists, "peer_netns": want["peer"]}
        lo = have["ns"]["links"].get("lo")
        view["loopback"] = ("up" if lo["up"] else "down") if lo else None
        wanted = (veth["host_addresses"], veth["ns_addresses"]) if veth and want["state"] == "present" else ((), ())
        host_end = have["host_end"] if (have["paired"] or want["state"] == "present") else None
        view["host_end"] = self._end_view(
            host_end, have["host"]["addrs"].get((host_end or {}).get("index"), []), wanted[0]
        )
        nse = have["ns_end"]
        view["ns_end"] = self._end_view(nse, have["ns"]["addrs"].get((nse or {}).get("index"), []), wanted[1])
        if want["state"] == "present":
            if want["routes"] is not None:
                view["routes"] = _routes_view(self._managed_routes(have["ns"], veth["ns_name"], want["routes"]))
            if want["host_routes"] is not None:
                view["host_routes"] = _routes_view(
                    self._managed_routes(have["host"], veth["host_name"], want["host_routes"])
                )
            if want["sysctls"] is not None:
                view["sysctls"] = dict(have["sysctls"])
        view["resolv_conf"] = self._resolv_view(have["resolv"]["content"], have["resolv"]["mode"])
        return view

    def _after(self, want, have, before):
        if want["state"] == "absent":
            return {
                "namespace": want["name"],
                "exists": False,
                "peer_netns": want["peer"],
                "loopback": None,
                "host_end": None,
                "ns_end": None,
                "resolv_conf": None,
            }
        veth = want["veth"]
        view = {"namespace": want["name"], "exists": True, "peer_netns": want["peer"], "loopback": "up"}
        for key, link, addrs, side in (
            ("host_end", have["host_end"], veth["host_addresses"], "host"),
            ("ns_end", have["ns_end"], veth["ns_addresses"], "ns"),
        ):
            kept = []
            if link is not None and not want["purge_addresses"]:
                kept = [a for a in have[side]["addrs"].get(link["index"], []) if a not in addrs]
                kept = [a for a in kept if not (a.version == 6 and a.ip.is_link_local)]
            mtu = veth["mtu"] or (link["mtu"] if link else VETH_DEFAULT_MTU)
            view[key] = {
                "name": veth["%s_name" % side],
                "mtu": mtu,
                "state": "up",
                "addresses": _addr_list(list(addrs) + kept),
            }
        if want["routes"] is not None:
            view["routes"] = _routes_view(want["routes"])
        if want["host_routes"] is not None:
            view["host_routes"] = _routes_view(want["host_routes"])
        if want["sysctls"] is not None:
            view["sysctls"] = dict(want["sysctls"])
        if want["resolv_conf"] is not None:
            view["resolv_conf"] = self._resolv_view(want["resolv_conf"], RESOLV_MODE)
        else:
            view["resolv_conf"] = before["resolv_conf"]
        return view

    # ------------------------------------------------------------------ ops
    def _ops(self, want, have):
        if want["state"] == "absent":
            return self._ops_absent(want, have)
        ops = []
        name, veth = want["name"], want["veth"]
        ns, host = self.ns, self.host
        if not self.ns_exists:
            ops.append(_Op("netns_add", "ip netns add %s" % name))
        mtu = veth["mtu"]
        if have["host_end"] is None:
            mtu_txt = " mtu %d" % mtu if mtu else ""
            ops.append(
                _Op(
                    "veth_add",
                    host.ip(
                        "link add %s%s type veth peer name %s netns %s%s"
                        % (veth["host_name"], mtu_txt, veth["ns_name"], name, mtu_txt)
                    ),
                )
            )
        elif mtu:
            for side, link in ((host, have["host_end"]), (ns, have["ns_end"])):
                if link["mtu"] != mtu:
                    ops.append(
                        _Op(
                            "link_mtu",
                            side.ip("link set dev %s mtu %d" % (link["name"], mtu)),
                            side=side,
                            ifname=link["name"],
                            mtu=mtu,
                        )
                    )
        lo = have["ns"]["links"].get("lo")
        for side, ifname, link in (
            (ns, "lo", lo),
            (host, veth["host_name"], have["host_end"]),
            (ns, veth["ns_name"], have["ns_end"]),
        ):
            if link is None or not link["up"]:
                ops.append(_Op("link_up", side.ip("link set dev %s up" % ifname), side=side, ifname=ifname))
        if want["sysctls"]:
            for key, value in want["sysctls"].items():
                if have["sysctls"].get(key) != value:
                    ops.append(
                        _Op("sysctl", "ip netns exec %s sysctl -w %s=%s" % (name, key, value), key=key, value=value)
                    )
        touched = set()
        for side, link, addrs in (
            (host, have["host_end"], veth["host_addresses"]),
            (ns, have["ns_end"], veth["ns_addresses"]),
        ):
            ifname = veth["host_name"] if side is host else veth["ns_name"]
            current = have[side.label]["addrs"].get(link["index"], []) if link else []
            deleted = [
                a
                for a in current
                if want["purge_addresses"] and a not in addrs and not (a.version == 6 and a.ip.is_link_local)
            ]
            for iface in sorted(deleted, key=_addr_key):
                ops.append(
                    _Op(
                        "addr",
                        side.ip("address del %s dev %s" % (iface, ifname)),
                        side=side,
                        ifname=ifname,
                        iface=iface,
                        cmd="del",
                    )
                )
            if deleted:
                touched.add((side.label, ifname))
            for iface in addrs:
                # Deleting a primary IPv4 address also deletes its secondaries: re-assert the survivors.
                v4_deleted = any(d.version == 4 for d in deleted)
                cmd = "add" if iface not in current else ("replace" if v4_deleted and iface.version == 4 else None)
                if cmd:
                    nodad = " nodad" if iface.version == 6 else ""
                    ops.append(
                        _Op(
                            "addr",
                            side.ip("address %s %s dev %s%s" % (cmd, iface, ifname, nodad)),
                            side=side,
                            ifname=ifname,
                            iface=iface,
                            cmd=cmd,
                        )
                    )
        for side, routes, end in (
            (ns, want["routes"], veth["ns_name"]),
            (host, want["host_routes"], veth["host_name"]),
        ):
            if routes is not None:
                ops.extend(self._route_ops(side, have[side.label], routes, end, touched))
        ops.extend(self._resolv_ops(want, have))
        return ops

    def _route_text(self, side, cmd, route):
        via = " via %s" % route["via"] if route["via"] is not None else ""
        return side.ip("route %s %s%s dev %s metric %d" % (cmd, route["dest"], via, route["dev"], route["metric"]))

    def _route_ops(self, side, side_have, routes, end, touched):
        ops = []
        wanted = {_route_key(r) for r in routes}
        current = {}
        for route in side_have["routes"]:
            current.setdefault(_route_key(route), route)
        for route in side_have["routes"]:
            if route["dev"] == end and route["proto"] in PURGEABLE_PROTOCOLS and _route_key(route) not in wanted:
                ops.append(_Op("route", self._route_text(side, "del", route), side=side, route=route, cmd="del"))
        for route in routes:
            have = current.get(_route_key(route))
            if have is None:
                cmd = "add"
            elif have["via"] != route["via"] or have["dev"] != route["dev"]:
                cmd = "replace"
            elif (side.label, route["dev"]) in touched:
                cmd = "replace"  # an address on its device was removed: the kernel may have dropped it
            else:
                continue
            ops.append(_Op("route", self._route_text(side, cmd, route), side=side, route=route, cmd=cmd))
        return ops

    def _resolv_ops(self, want, have):
        content = want["resolv_conf"]
        resolv = have["resolv"]
        if content is None:
            return []
        ops = []
        if not resolv["dir_exists"]:
            ops.append(_Op("mkdir", "mkdir -m 0755 %s" % resolv["dir"], path=resolv["dir"]))
        if resolv["content"] != content:
            ops.append(_Op("write", "write %s (mode 0644)" % resolv["path"], path=resolv["path"], content=content))
        elif resolv["mode"] != RESOLV_MODE:
            ops.append(_Op("chmod", "chmod 0644 %s" % resolv["path"], path=resolv["path"]))
        return ops

    def _ops_absent(self, want, have):
        ops = []
        veth, name = want["veth"], want["name"]
        if veth is not None and have["ns_end"] is not None and have["ns_end"]["kind"] == "veth":
            ops.append(
                _Op(
                    "link_del",
                    self.ns.ip("link del %s (deletes both ends)" % veth["ns_name"]),
                    side=self.ns,
                    ifname=veth["ns_name"],
                )
            )
        if veth is not None and have["host_end"] is not None and not have["paired"]:
            self.module.warn(
                "interface %r in %s is not this pair's host end (its peer is not %r in namespace %r): left alone"
                % (veth["host_name"], self.host.where, veth["ns_name"], name)
            )
        if self.ns_exists:
            ops.append(_Op("netns_del", "ip netns del %s" % name))
        resolv = have["resolv"]
        if resolv["content"] is not None:
            ops.append(_Op("unlink", "rm %s" % resolv["path"], path=resolv["path"]))
        if resolv["dir_exists"] and not resolv["others"]:
            ops.append(_Op("rmdir", "rmdir %s" % resolv["dir"], path=resolv["dir"]))
        return ops

    # ------------------------------------------------------------------ apply
    def _do_netns_add(self):
        pyroute2.netns.create(self.params["name"])
        self.ns_exists = True

    def _do_netns_del(self):
        self.ns.close()
        pyroute2.netns.remove(self.params["name"])

    def _do_veth_add(self):
        veth = self.params["veth"]
        fd = os.open(netns_path(self.params["name"]), os.O_RDONLY | os.O_CLOEXEC)
        try:
            peer = {"ifname": veth["ns_name"], "net_ns_fd": fd}
            extra = {}
            if veth["mtu"]:
                peer["mtu"] = extra["mtu"] = veth["mtu"]
            self.host.ipr.link("add", ifname=veth["host_name"], kind="veth", peer=peer, **extra)
        finally:
            os.close(fd)

    def _do_link_mtu(self, side, ifname, mtu):
        side.ipr.link("set", index=side.index(ifname), mtu=mtu)

    def _do_link_up(self, side, ifname):
        side.ipr.link("set", index=side.index(ifname), state="up")

    def _do_link_del(self, side, ifname):
        side.ipr.link("del", index=side.index(ifname))

    def _do_addr(self, side, ifname, iface, cmd):
        kwargs = {"index": side.index(ifname), "address": str(iface.ip), "prefixlen": iface.network.prefixlen}
        if iface.version == 6 and cmd != "del":
            # The two ends are the whole link: duplicate detection cannot find anything
            # and would keep the address tentative (unusable) for about two seconds.
            kwargs["flags"] = IFA_F_NODAD
        side.ipr.addr(cmd, **kwargs)

    def _do_route(self, side, route, cmd):
        dest = route["dest"]
        kwargs = {
            "family": socket.AF_INET if dest.version == 4 else socket.AF_INET6,
            "dst_len": dest.prefixlen,
            "table": RT_TABLE_MAIN,
            "priority": route["metric"],
        }
        if dest.prefixlen:
            kwargs["dst"] = str(dest.network_address)
        if route["via"] is not None:
            kwargs["gateway"] = str(route["via"])
        if route["dev"] is not None:
            kwargs["oif"] = side.index(route["dev"])
        if cmd != "del":
            kwargs["proto"] = RTPROT_STATIC
            kwargs["scope"] = RT_SCOPE_LINK if route["via"] is None and dest.version == 4 else RT_SCOPE_UNIVERSE
            cmd = "replace"
        side.ipr.route(cmd, **kwargs)

    def _do_sysctl(self, key, value):
        path = "/proc/sys/" + "/".join(c.replace("/", ".") for c in key.split("."))
        with in_netns(self.params["name"]):
            with open(path, "w") as fh:
                fh.write(value)

    def _do_mkdir(self, path):
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        os.chmod(path, DIR_MODE)

    def _do_write(self, path, content):
        fd, tmp = tempfile.mkstemp(prefix=".resolv.conf.", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
                fh.flush()
                os.fchmod(fh.fileno(), RESOLV_MODE)
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _do_chmod(self, path):
        os.chmod(path, RESOLV_MODE)

    def _do_unlink(self, path):
        os.unlink(path)

    def _do_rmdir(self, path):
        os.rmdir(path)

    def _apply(self, ops):
        done = []
        for op in ops:
            try:
                getattr(self, "_do_" + op.kind)(**op.args)
            except (NetlinkError, OSError, ValueError) as exc:
                self.module.fail_json(
                    msg="%s: failed: %s" % (op.text, _errtext(exc)),
                    changed=bool(done),
                    operations=done,
                    failed_operation=op.text,
                )
            done.append(op.text)

    # ------------------------------------------------------------------ run
    def run(self):
        require_pyroute2(self.module)
        want = self._want()
        self.host = _Side("host", want["peer"])
        self.ns = _Side("ns", want["name"])
        try:
            have = self._have(want)
            if want["state"] == "present":
                self._check_pair(want, have)
            if self.errors:
                self.module.fail_json(msg="; ".join(self.errors))
            before = self._before(want, have)
            after = self._after(want, have, before)
            ops = self._ops(want, have)
            if ops and not self.check_mode:
                self._apply(ops)
        finally:
            self.host.close()
            self.ns.close()
        result = {"changed": bool(ops), "operations": [op.text for op in ops], "netns_veth": after}
        if self.module._diff:
            result["diff"] = {"before": before, "after": after}
        return result
