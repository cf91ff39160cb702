#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: netns_veth
short_description: A network namespace joined to the host (or another namespace) by a veth pair
version_added: 0.1.0
description:
  - Creates a named network namespace (as C(ip netns add) does, under C(/run/netns)) and a veth pair with one end
    in it and the other end in the host namespace or in O(peer_netns).
  - Manages the pair as a whole, since the module owns it. Both ends are brought up, with the same MTU and the listed
    IPv4 and IPv6 addresses. The loopback interface of the namespace is brought up too.
    Optionally it also manages routes inside the namespace (O(routes)) and in the peer namespace (O(host_routes)),
    per-namespace C(net.*) sysctls (O(sysctls)), and C(/etc/netns/NAME/resolv.conf) (O(resolv_conf)),
    which C(ip netns exec) bind-mounts over C(/etc/resolv.conf).
  - With O(state=absent) it removes the pair, the namespace and C(/etc/netns/NAME/resolv.conf) (and that
    directory if nothing else is left in it), and nothing else.
  - It never takes over an interface that is not this pair. It fails before changing anything when O(veth.host_name)
    or O(veth.ns_name) names an existing interface that is not a veth, or a veth whose peer is something else.
  - IPv6 addresses are added without duplicate address detection (C(nodad)). The two ends are the whole link, so
    detection cannot find a duplicate. It would only keep the addresses unusable (tentative) for about two
    seconds after creation.
  - Everything the kernel adds by itself is left alone and never reported as a change. That covers IPv6 link-local
    C(fe80::/64) addresses, connected-prefix routes, and routes from router advertisements, DHCP or routing daemons.
  - Uses netlink through pyroute2 only. It runs no C(ip) commands; RV(operations) shows the equivalent ones.
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
  - splitroute.vpn._common.pyroute2
options:
  name:
    description:
      - Name of the network namespace to manage (C(/run/netns/NAME)).
      - It is created when missing. It may already exist, for example made by C(ip netns add), and is then adopted.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the namespace and the pair.
      - V(absent) deletes the pair (when O(veth) is given), the namespace and its C(resolv.conf). Other interfaces and
        namespaces are not touched.
    type: str
    choices: [present, absent]
    default: present
  peer_netns:
    description:
      - Namespace that holds the other ("host") end of the pair, and where O(host_routes) are managed.
      - When omitted, that end lives in the network namespace of the managed host's Ansible process, usually the
        host's own.
      - Must exist and differ from O(name).
    type: str
  veth:
    description:
      - The veth pair. Required with O(state=present).
      - With O(state=absent), if given, the pair is deleted explicitly before the namespace. Otherwise it goes away
        with the namespace, unless a process still holds that namespace open.
    type: dict
    suboptions:
      host_name:
        description: Name of the end in the host (or O(peer_netns)) namespace, at most 15 characters.
        type: str
        required: true
      ns_name:
        description: Name of the end inside namespace O(name), at most 15 characters. It may equal O(veth.host_name).
        type: str
        required: true
      host_addresses:
        description:
          - Addresses of the host end as C(ADDRESS/PREFIX), IPv4 or IPv6. Host bits are allowed (C(10.0.0.1/30)).
          - With O(purge_addresses=true), these are all of its addresses, apart from kernel-made IPv6 link-local ones.
        type: list
        elements: str
        default: []
      ns_addresses:
        description: Addresses of the namespace end, as for O(veth.host_addresses).
        type: list
        elements: str
        default: []
      mtu:
        description:
          - MTU of both ends (68-65535; at least 1280 if any IPv6 address is listed).
          - When omitted, a new pair gets the kernel default (1500) and an existing pair keeps its MTU.
        type: int
  purge_addresses:
    description:
      - Remove addresses that are not listed in O(veth.host_addresses) and O(veth.ns_addresses) from the two ends.
      - Kernel-made IPv6 link-local addresses are never removed.
    type: bool
    default: true
  routes:
    description:
      - Routes inside namespace O(name), in its main table.
      - When given, this is the complete list of static routes through the namespace end. Routes on that end that are
        not listed are removed, if they were added by hand or by this module (protocol C(static) or C(boot)).
        Kernel, RA, DHCP and routing-daemon routes are kept. Routes through other devices are added when listed and
        otherwise left alone.
      - When omitted, routes are not managed. V([]) removes all static routes through the namespace end.
      - A route is identified by O(routes[].dest) and O(routes[].metric). A listed route whose gateway or device
        differs is replaced.
    type: list
    elements: dict
    suboptions:
      dest:
        description:
          - Destination network in CIDR form (host bits zero), for example C(192.0.2.0/24) or C(2001:db8::/32).
          - V(default) is C(0.0.0.0/0) or C(::/0) as O(routes[].via) is IPv4 or IPv6. Without O(routes[].via), write
            C(0.0.0.0/0) or C(::/0).
        type: str
        required: true
      via:
        description:
          - Gateway address, of the same family as O(routes[].dest). Omit it for a route on the device itself.
          - On the namespace end it must lie in the network of one of its addresses (or be IPv6 link-local), or
            the module fails before changing anything, as the kernel would refuse the route.
        type: str
      dev:
        description: Output device inside the namespace. Defaults to the namespace end O(veth.ns_name).
        type: str
      metric:
        description: Route metric (priority). Defaults to the kernel's own default, 0 for IPv4 and 1024 for IPv6.
        type: int
  host_routes:
    description:
      - Routes in the host (or O(peer_netns)) namespace, with the same rules as O(routes). O(host_routes[].dev)
        defaults to the host end O(veth.host_name). Only routes through that end are ever removed.
      - For example, route a prefix that lives behind the namespace through its end of the pair.
    type: list
    elements: dict
    suboptions:
      dest:
        description: As O(routes[].dest).
        type: str
        required: true
      via:
        description: As O(routes[].via).
        type: str
      dev:
        description: Output device in the host (or O(peer_netns)) namespace. Defaults to O(veth.host_name).
        type: str
      metric:
        description: As O(routes[].metric).
        type: int
  sysctls:
    description:
      - Sysctls to set inside namespace O(name) only, as a dict of C(net.*) keys in dotted form and their values.
        For example C(net.ipv4.ip_forward=1) or C(net.ipv6.conf.all.forwarding=1).
      - An interface name that contains a dot is written with C(/), as sysctl(8) does
        (C(net.ipv4.conf.eth0/100.rp_filter)).
      - Keys outside C(net.*) are refused, since they are not per namespace. A key that does not exist in the
        namespace is an error. Keys for the namespace end may be given before that end exists.
      - Values are compared after collapsing whitespace. V(true) and V(false) mean C(1) and C(0).
      - Keys not listed are left alone.
    type: dict
  resolv_conf:
    description:
      - Content of C(/etc/netns/NAME/resolv.conf), which programs run with C(ip netns exec NAME) see as
        C(/etc/resolv.conf). Written with mode C(0644); the directory is created (C(0755)) when missing.
      - Give either O(resolv_conf.content), or any of O(resolv_conf.nameservers), O(resolv_conf.search) and
        O(resolv_conf.options), from which the file is rendered.
      - When omitted the file is not managed (but O(state=absent) still removes it).
    type: dict
    suboptions:
      nameservers:
        description: Name server addresses (IPv4 or IPv6), one C(nameserver) line each. The C library reads three.
        type: list
        elements: str
      search:
        description: Search domains, written as one C(search) line.
        type: list
        elements: str
      options:
        description: Resolver options such as C(ndots:2) or C(edns0), written as one C(options) line.
        type: list
        elements: str
      content:
        description: The whole file, written as given (a final newline is added when missing).
        type: str
notes:
  - Needs root (C(CAP_NET_ADMIN) and C(CAP_SYS_ADMIN) to mount the namespace).
  - Check mode has no side effects at all. It creates neither the namespace nor C(/etc/netns/NAME).
  - To rename an end, remove the pair (O(state=absent)) first. An existing pair is never renamed or taken over.
  - Addresses go through the collection's one address parser, which refuses scope ids (C(fd00::1%eth0)), since a
    scope id could carry a new line into C(resolv.conf) or an C(ip) command.
  - A plain file at C(/run/netns/NAME) (left by a namespace that was not created or removed completely) is not a
    namespace. The module fails before changing anything and names the command that removes it
    (C(ip netns delete NAME)), with either state.
  - A wrong type (a list or a dictionary where a string is wanted, a string or a number where a list is wanted)
    fails with a message that names the option and its place, such as C(routes[0].dest).
seealso:
  - name: ip-netns(8)
    description: How named network namespaces and C(/etc/netns/NAME) work.
    link: https://man7.org/linux/man-pages/man8/ip-netns.8.html
  - name: veth(4)
    description: Virtual Ethernet pairs.
    link: https://man7.org/linux/man-pages/man4/veth.4.html
"""

EXAMPLES = r"""
- name: Namespace vpn with a veth pair to the host, forwarding on, DNS set
  splitroute.vpn.netns_veth:
    name: vpn
    veth:
      host_name: veth-vpn
      ns_name: eth0
      host_addresses: [10.200.0.1/30, fd00:200::1/64]
      ns_addresses: [10.200.0.2/30, fd00:200::2/64]
      mtu: 1420
    routes:
      - dest: default
        via: 10.200.0.1
      - dest: default
        via: fd00:200::1
    sysctls:
      net.ipv4.ip_forward: 1
      net.ipv6.conf.all.forwarding: 1
    resolv_conf:
      nameservers: [9.9.9.9, 2620:fe::fe]
      options: [edns0]

- name: Route a prefix that lives behind the namespace through its veth end
  splitroute.vpn.netns_veth:
    name: vpn
    veth:
      host_name: veth-vpn
      ns_name: eth0
      host_addresses: [10.200.0.1/30]
      ns_addresses: [10.200.0.2/30]
    host_routes:
      - dest: 10.201.0.0/24
        via: 10.200.0.2

- name: A namespace joined to another namespace (lab) instead of the host
  splitroute.vpn.netns_veth:
    name: client1
    peer_netns: lab
    veth:
      host_name: c1
      ns_name: eth0
      host_addresses: [192.0.2.1/24]
      ns_addresses: [192.0.2.11/24]

- name: Remove the namespace, its pair and its resolv.conf
  splitroute.vpn.netns_veth:
    name: vpn
    state: absent
    veth:
      host_name: veth-vpn
      ns_name: eth0
"""

RETURN = r"""
operations:
  description:
    - What the module ran, or would run in check mode, in order, written as equivalent shell commands.
    - The module runs no commands itself. It uses netlink and plain file operations.
  returned: always
  type: list
  elements: str
  sample:
    - ip netns add vpn
    - ip link add veth-vpn mtu 1420 type veth peer name eth0 netns vpn mtu 1420
    - ip -n vpn link set dev lo up
    - ip link set dev veth-vpn up
    - ip -n vpn link set dev eth0 up
    - ip netns exec vpn sysctl -w net.ipv4.ip_forward=1
    - ip address add 10.200.0.1/30 dev veth-vpn
    - ip -n vpn address add fd00:200::2/64 dev eth0 nodad
    - ip -n vpn route add 0.0.0.0/0 via 10.200.0.1 dev eth0 metric 0
    - mkdir -m 0755 /etc/netns/vpn
    - write /etc/netns/vpn/resolv.conf (mode 0644)
netns_veth:
  description:
    - The state after the run (predicted in check mode), also returned as C(diff.after) in diff mode, where
      C(diff.before) has the same keys.
    - Keys C(routes), C(host_routes) and C(sysctls) are only there when the matching option is given. Addresses omit
      kernel-made IPv6 link-local ones.
  returned: always
  type: dict
  contains:
    namespace:
      description: The namespace name, O(name).
      type: str
      sample: vpn
    exists:
      description: Whether the namespace exists.
      type: bool
      sample: true
    peer_netns:
      description: O(peer_netns), or V(null) for the host namespace.
      type: str
      sample: null
    loopback:
      description: State of C(lo) in the namespace, V(up) or V(down); V(null) without a namespace.
      type: str
      sample: up
    host_end:
      description: The host end (C(name), C(mtu), C(state), C(addresses)), or V(null).
      type: dict
      sample: {name: veth-vpn, mtu: 1420, state: up, addresses: [10.200.0.1/30, fd00:200::1/64]}
    ns_end:
      description: The namespace end, as RV(netns_veth.host_end).
      type: dict
      sample: {name: eth0, mtu: 1420, state: up, addresses: [10.200.0.2/30, fd00:200::2/64]}
    routes:
      description: Routes in the namespace through its end, and the listed ones (C(dest), C(via), C(dev), C(metric)).
      type: list
      elements: dict
      sample: [{dest: 0.0.0.0/0, via: 10.200.0.1, dev: eth0, metric: 0}]
    host_routes:
      description: As RV(netns_veth.routes), in the host (or O(peer_netns)) namespace.
      type: list
      elements: dict
    sysctls:
      description: The listed sysctls and their values in the namespace (V(null) where unknown yet).
      type: dict
      sample: {net.ipv4.ip_forward: "1"}
    resolv_conf:
      description: C(path), C(content) and C(mode) of C(/etc/netns/NAME/resolv.conf), or V(null) when there is none.
      type: dict
      sample: {path: /etc/netns/vpn/resolv.conf, content: "nameserver 9.9.9.9\n", mode: "0644"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._netns_veth import NetnsVeth


def main():
    route = {
        "dest": {"type": "str", "required": True},
        "via": {"type": "str"},
        "dev": {"type": "str"},
        "metric": {"type": "int"},
    }
    argument_spec = {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "peer_netns": {"type": "str"},
        "veth": {
            "type": "dict",
            "options": {
                "host_name": {"type": "str", "required": True},
                "ns_name": {"type": "str", "required": True},
                "host_addresses": {"type": "list", "elements": "str", "default": []},
                "ns_addresses": {"type": "list", "elements": "str", "default": []},
                "mtu": {"type": "int"},
            },
        },
        "purge_addresses": {"type": "bool", "default": True},
        "routes": {"type": "list", "elements": "dict", "options": route},
        "host_routes": {"type": "list", "elements": "dict", "options": route},
        "sysctls": {"type": "dict"},
        "resolv_conf": {
            "type": "dict",
            "options": {
                "nameservers": {"type": "list", "elements": "str"},
                "search": {"type": "list", "elements": "str"},
                "options": {"type": "list", "elements": "str"},
                "content": {"type": "str"},
            },
            "mutually_exclusive": [["content", "nameservers"], ["content", "search"], ["content", "options"]],
            "required_one_of": [["content", "nameservers", "search", "options"]],
        },
    }
    check_types(argument_spec)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ("veth",))],
        supports_check_mode=True,
    )
    module.exit_json(**NetnsVeth(module).run())


if __name__ == "__main__":
    main()
