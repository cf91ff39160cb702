#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nft_set
short_description: Manage a named nftables set and its elements
version_added: 0.1.0
description:
  - Creates, changes and deletes one named set in an nftables table, and manages its elements with the
    resource-module states V(merged), V(replaced), V(overridden), V(deleted) and V(gathered), plus V(flushed)
    and V(absent).
  - Reads the live set through the nftables JSON API and applies every change in one transaction through
    libnftables (or C(nft -j)). The set never shows a half-applied state, and nothing is parsed from C(nft list) text.
  - Elements are validated against the set's type before anything is sent; an IPv6 address for an C(ipv4_addr)
    set is an error, not a kernel message.
  - Built for sets that other programs fill at run time, such as dnsmasq with C(nftset=). V(merged) and V(replaced)
    never remove an element that carries an expiry.
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
  - splitroute.vpn._common.netns
  - splitroute.vpn._common.nftables
options:
  family:
    description: Family of the table that holds the set.
    type: str
    choices: [inet, ip, ip6, bridge, netdev]
    default: inet
  table:
    description: Name of the table that holds the set.
    type: str
    required: true
  name:
    description: Name of the set.
    type: str
    required: true
  create_table:
    description:
      - Create the table when it does not exist. When V(false), a missing table is an error.
      - The table is never deleted by this module, not even with O(state=absent).
    type: bool
    default: false
  type:
    description:
      - Element type, one of V(ipv4_addr), V(ipv6_addr), V(ether_addr), V(inet_service), V(inet_proto), V(mark),
        V(ifname), or a concatenation written V(ipv4_addr . inet_service) or given as a list.
      - Required with O(state=merged), O(state=replaced) and O(state=overridden).
    type: raw
  flags:
    description:
      - Set flags. V(interval) allows prefixes (V(10.0.0.0/8)) and ranges (V(10.0.0.1-10.0.0.9), V(1000-2000));
        V(timeout) allows elements to expire.
    type: list
    elements: str
    choices: [interval, timeout, constant, dynamic]
    default: []
  timeout:
    description:
      - Default lifetime of an element, in seconds or as an nft duration (V(1h), V(30m), V(1d12h)).
      - Needs V(timeout) in O(flags). Elements added by this module get this lifetime too.
      - V(0) means no default lifetime (nft lists such a set without a timeout); with O(state=overridden) it
        recreates a set that has one. Omit O(timeout) to accept whatever the set has.
    type: raw
  size:
    description:
      - Maximum number of elements, 1 or more. Not compared when omitted.
      - A request that would leave the set with more elements than its size (this one, or the existing set's when
        omitted) fails before anything is sent.
    type: int
  auto_merge:
    description:
      - Let the kernel merge adjacent and overlapping intervals. Needs V(interval) in O(flags).
      - Applied when the set is created. nftables 1.0.6 does not report it back in JSON, so a set that already
        exists is not checked for it.
    type: bool
    default: false
  comment:
    description: Comment stored with the set (at most 128 characters, no quotes or backslashes).
    type: str
  elements:
    description:
      - Elements in nft's notation; a concatenated element is written V(10.0.0.1 . 443).
      - An V(inet_proto) element is a number or a name from C(/etc/protocols) (V(tcp) and V(6) are the same
        element); the module reports them as numbers.
      - In an interval set the module compares what the elements cover, not how they are written, so
        V(10.0.0.0/24) and V(10.0.0.0-10.0.0.255) are the same, and overlapping input is merged.
    type: list
    elements: str
  state:
    description:
      - V(merged) creates the set if needed and adds the elements that are missing; it never removes one.
      - V(replaced) makes the permanent elements (those without an expiry) exactly O(elements); elements
        with an expiry, such as those dnsmasq adds to a set with a timeout, are left alone.
      - V(overridden) makes the elements exactly O(elements), removing everything else, and recreates the set
        when its type, flags, timeout, size or comment differ (this fails while a rule references the set).
      - V(deleted) removes the listed elements (in an interval set, the addresses they cover).
      - V(flushed) removes every element and keeps the set.
      - V(absent) deletes the set (and nothing else).
      - V(gathered) returns the set's definition and its elements with their remaining lifetime; it changes nothing.
      - V(merged) and V(replaced) fail if the existing set's definition differs from the requested one.
    type: str
    choices: [merged, replaced, overridden, deleted, flushed, absent, gathered]
    default: merged
  backend:
    description:
      - How to talk to nftables. V(auto) uses the libnftables Python binding when importable, otherwise C(nft -j).
    type: str
    choices: [auto, libnftables, nft]
    default: auto
notes:
  - A set referenced by a rule cannot be deleted; O(state=absent) then fails with the kernel's message and changes
    nothing.
  - Every change is one nftables transaction, which the kernel applies completely or not at all. When the
    kernel refuses part of it (for example an element of a set that O(state=overridden) recreates), the set
    stays exactly as it was, with its elements and their expiry. When O(comment) or O(auto_merge) is given for
    a set that must be created, the transaction is sent in nft syntax (nftables 1.0.6 drops both from JSON
    input, 1.1.3 the comment), still as one batch.
  - An empty O(netns) is an error, not the namespace the module runs in.
  - A wrong type (a list or a dictionary where a string is wanted, a string or a number where a list is wanted)
    fails with a message that names the option, before anything is looked at.
seealso:
  - name: nftables wiki, sets
    description: Set types, flags and element notation.
    link: https://wiki.nftables.org/wiki-nftables/index.php/Sets
  - module: splitroute.vpn.dnsmasq_nftset
"""

EXAMPLES = r"""
- name: Create the split-tunnel sets dnsmasq fills, with a one-hour lifetime
  splitroute.vpn.nft_set:
    table: splitroute
    name: "{{ item.name }}"
    type: "{{ item.type }}"
    flags: [timeout]
    timeout: 1h
    create_table: true
  loop:
    - {name: wg0_v4, type: ipv4_addr}
    - {name: wg0_v6, type: ipv6_addr}

- name: Keep a static network list in an interval set, without touching what dnsmasq added
  splitroute.vpn.nft_set:
    table: splitroute
    name: wg0_static_v4
    type: ipv4_addr
    flags: [interval]
    elements:
      - 198.51.100.0/24
      - 203.0.113.7
    state: replaced

- name: Read a set with the remaining lifetime of every element
  splitroute.vpn.nft_set:
    table: splitroute
    name: wg0_v4
    state: gathered
  register: wg0_v4_set

- name: Allow a few services, as address . port pairs
  splitroute.vpn.nft_set:
    table: filter
    name: allowed
    type: ipv4_addr . inet_service
    elements: ["10.4.0.7 . 443", "10.4.0.8 . 22"]

- name: Remove the set inside a namespace
  splitroute.vpn.nft_set:
    netns: lab1
    table: splitroute
    name: wg0_v4
    state: absent
"""

RETURN = r"""
commands:
  description:
    - The nftables JSON commands sent (or that would be sent in check mode), in order, as one transaction.
    - Element lists are cut to their first 20 entries, with C(count) holding the full number.
  returned: always
  type: list
  elements: dict
  sample:
    - add:
        element: {"family": "inet", "table": "splitroute", "name": "wg0_v4", "elem": ["198.51.100.7"], "count": 1}
backend:
  description: Which interface to nftables was used.
  returned: always
  type: str
  sample: libnftables
gathered:
  description: The set as it is, with O(state=gathered). Empty when the set does not exist.
  returned: when O(state=gathered)
  type: dict
  sample:
    family: inet
    table: splitroute
    name: wg0_v4
    type: ipv4_addr
    flags: [timeout]
    timeout: 3600
    size: null
    comment: null
    elements: [{"value": "198.51.100.7", "expires": 3512}]
diff:
  description: The set's definition and sorted elements before and after.
  returned: when diff mode is on and O(state) is not V(gathered)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._nft_set import NftSet


def main():
    argument_spec = {
        "family": {"type": "str", "default": "inet", "choices": ["inet", "ip", "ip6", "bridge", "netdev"]},
        "table": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "create_table": {"type": "bool", "default": False},
        "type": {"type": "raw"},
        "flags": {
            "type": "list",
            "elements": "str",
            "default": [],
            "choices": ["interval", "timeout", "constant", "dynamic"],
        },
        "timeout": {"type": "raw"},
        "size": {"type": "int"},
        "auto_merge": {"type": "bool", "default": False},
        "comment": {"type": "str"},
        "elements": {"type": "list", "elements": "str"},
        "state": {
            "type": "str",
            "default": "merged",
            "choices": ["merged", "replaced", "overridden", "deleted", "flushed", "absent", "gathered"],
        },
        "backend": {"type": "str", "default": "auto", "choices": ["auto", "libnftables", "nft"]},
        "netns": {"type": "str"},
    }
    check_types(argument_spec)
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    result = NftSet(module).run()
    # Echo a long element list back shortened: Ansible would otherwise copy and scan it twice.
    elements = module.params["elements"]
    if elements is not None and len(elements) > 50:
        shown = dict(module.params, elements=elements[:20] + ["... %d elements in all" % len(elements)])
        result["invocation"] = {"module_args": shown}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
