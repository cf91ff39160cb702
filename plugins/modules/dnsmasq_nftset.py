#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dnsmasq_nftset
short_description: Compile domain groups into a dnsmasq nftset and server configuration file
version_added: 0.1.0
description:
  - Writes one dnsmasq configuration file from O(groups). A group is a list of domains, the nftables sets that
    the addresses of those domains go into, and optionally the DNS servers that answer for them. Several tunnels
    means several groups.
  - 'With O(layout=flat), every domain gets exactly one C(nftset=/domain/4#inet#table#set4,6#inet#table#set6) line
    carrying all the sets of its group (dnsmasq keeps only one nftset line per name: a separate C(4#) and C(6#) line
    loses the IPv6 side), followed by one C(server=/domain/address) line per entry of O(groups[].servers).'
  - 'O(layout=front) and O(layout=back) render the two-tier layout: a front resolver whose O(path) is a dnsmasq
    C(servers-file) of C(server=/domain/back-address) lines (one per domain, the address is the group''s
    O(groups[].back_server)), and per tunnel a back resolver whose file holds the single catch-all line
    C(nftset=/#/...) and its C(server=address) upstreams. Forwarding by C(server=) is cheap in dnsmasq while every
    C(nftset=) line is walked for every reply, so the two-tier layout is much faster for long lists.'
  - Every domain is normalised before use. Case is folded, one trailing dot and one leading dot are dropped (a
    leading dot is dnsmasq's historical spelling of the same domain), and Unicode names are converted to punycode
    (IDNA, for example C(bücher.example) becomes C(xn--bcher-kva.example)). Labels are 1-63 characters from
    C(a-z 0-9 - _) and must not start or end with C(-); the whole name is at most 253 characters.
  - Domains that are the same after normalisation are written once. A domain may belong to one group only; the
    module fails when two groups list it. A subdomain of a domain of another group is allowed and, as in dnsmasq,
    the most specific match wins.
  - 'Wildcards are refused: C(nftset=/example.com/) already matches example.com and every subdomain, and dnsmasq''s
    nftset has no subdomains-only form, so C(*.example.com) cannot be expressed (dnsmasq 2.90 accepts
    C(nftset=/*.example.com/) but then matches no name at all). The error message names the domain to write
    instead.'
  - Input that could inject a dnsmasq directive is refused with a message before anything changes. This covers
    newlines, C(/), C(#), C(,), whitespace, NUL and other non-printable characters in domains, and anything but
    nftables identifiers, IP addresses and ports in the other fields.
  - The file starts with a comment saying that it is managed and is otherwise sorted, so the same input always
    gives the same bytes. The module fails when a line would be longer than the 1023 characters dnsmasq can read.
  - O(mode), O(owner) and O(group) are checked the way they will be applied (an octal or symbolic mode, a user and a
    group that exist) before anything is written, so a bad value leaves O(path) as it was.
  - Every address (O(groups[].servers), O(groups[].back_server)) goes through the collection's one address parser,
    which refuses scope ids (C(%...)). An empty O(netns) is an error, not the module's own namespace.
  - A wrong type (a list or a dictionary where a string is wanted, a string or a number where a list is wanted)
    fails with a message that names the option and its place, such as C(groups[1].domains).
  - The new content is checked with C(dnsmasq --test) before it atomically replaces O(path). For O(layout=front)
    the check uses C(--servers-file) and also reads the file as a conf-file, because C(dnsmasq --test) does not
    read servers-files. In check mode the same check runs on a temporary file that is removed afterwards.
  - dnsmasq reads C(nftset) lines only at start, so restart it after a change. A servers-file is read again on
    C(SIGHUP).
author:
  - splitroute maintainers (@splitroute)
requirements:
  - dnsmasq >= 2.87 (nftset support) on the managed host.
  - With O(check_sets=true), nftables >= 1.0 on the managed host. The libnftables Python binding (Debian
    C(python3-nftables)) is used when it can be imported, otherwise the C(nft) binary in JSON mode.
extends_documentation_fragment:
  - ansible.builtin.files
  - splitroute.vpn._common
  - splitroute.vpn._common.netns
options:
  path:
    description:
      - The dnsmasq file to manage, for example C(/etc/dnsmasq.d/splitroute.conf) or, for O(layout=front), the
        file given to dnsmasq's C(servers-file) option.
      - Its directory must exist.
    type: path
    required: true
  state:
    description:
      - V(present) writes the file, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  layout:
    description:
      - V(flat) writes C(nftset=/domain/...) and C(server=/domain/...) lines for every domain in one file.
      - V(front) writes the servers-file of a front resolver, only C(server=/domain/back_server) lines (and
        comments). O(groups[].sets) and O(groups[].servers) are not used.
      - V(back) writes the file of one tunnel's back resolver, the catch-all C(nftset=/#/...) line and a
        C(server=address) line for each of O(groups[].servers). It takes exactly one group; its
        O(groups[].domains) are validated but not written (the front resolver does the selection).
      - The same group definitions can thus render all three files.
    type: str
    choices: [flat, front, back]
    default: flat
  groups:
    description:
      - The domain groups. Groups are written in the order of their names, domains sorted.
      - Every field is validated with O(state=present); nothing is written when any is invalid.
      - An empty list with O(layout=flat) or O(layout=front) writes a file with only the header comment.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the group (for example the tunnel), 1-64 characters from C(A-Z a-z 0-9 _ . -).
          - Used in error messages and in a comment in the file. Must be unique.
        type: str
        required: true
      domains:
        description:
          - Domain names. Each also matches all its subdomains.
          - Accepted forms are C(example.com), C(Example.COM.), C(.example.com), C(bücher.example) and
            C(xn--bcher-kva.example). Wildcards such as C(*.example.com) are refused.
          - Names with the four characters that IDNA 2003 and IDNA 2008 encode differently (sharp s, final sigma,
            ZWJ, ZWNJ) are refused; give their C(xn--) form.
        type: list
        elements: str
        default: []
      sets:
        description:
          - The nftables sets that the addresses of the group's domains are added to, in the order given.
          - Used by O(layout=flat) and O(layout=back), required by O(layout=back).
        type: list
        elements: dict
        default: []
        suboptions:
          version:
            description:
              - V(4) adds A records (C(4#) in dnsmasq), V(6) adds AAAA records (C(6#)).
              - The set must have type C(ipv4_addr) or C(ipv6_addr) respectively.
            type: int
            choices: [4, 6]
            required: true
          family:
            description:
              - The nftables family of the table.
            type: str
            choices: [inet, ip, ip6]
            default: inet
          table:
            description:
              - The nftables table name (a letter, then letters, digits, C(_ . -)).
            type: str
            required: true
          name:
            description:
              - The nftables set name (a letter, then letters, digits, C(_ . -)).
            type: str
            required: true
      servers:
        description:
          - DNS servers for the group's domains, C(ADDRESS) or C(ADDRESS#PORT) (IPv4 or IPv6, port 1-65535),
            for example the tunnel's DNS server.
          - With O(layout=flat) each becomes a C(server=/domain/ADDRESS) line for every domain of the group.
            With O(layout=back) each becomes a C(server=ADDRESS) line (the back resolver's upstreams).
            Not used by O(layout=front).
          - Port 53 is written without C(#53). Duplicates are dropped, the order is kept.
        type: list
        elements: str
        default: []
      back_server:
        description:
          - 'The address of the group''s back resolver, C(ADDRESS) or C(ADDRESS#PORT), for example
            V(127.0.0.53#5301).'
          - Required by O(layout=front), not used by the other layouts.
        type: str
  check_sets:
    description:
      - Before writing, check that every set of O(groups[].sets) exists and has type C(ipv4_addr)
        (O(groups[].sets[].version=4)) or C(ipv6_addr) (O(groups[].sets[].version=6)), in the network namespace
        O(netns) when given. Fails with a message naming each missing or mistyped set.
      - Not done for O(layout=front), which writes no C(nftset) lines.
    type: bool
    default: false
  dnsmasq_binary:
    description:
      - The dnsmasq program used for C(dnsmasq --test), a name looked up in E(PATH), C(/usr/sbin) and C(/sbin), or
        an absolute path.
    type: str
    default: dnsmasq
notes:
  - O(netns) only matters for O(check_sets). The module enters the namespace before it looks at anything, so a
    namespace that does not exist fails the task even without O(check_sets).
  - dnsmasq adds addresses to sets only from forwarded replies, not from its cache.
  - 'dnsmasq reads a servers-file after it has dropped privileges, at start too, so the file and every directory
    above it must be readable by the dnsmasq user (for example C(nobody)). Otherwise dnsmasq only logs
    C(cannot read ...: Permission denied) and runs without those servers.'
  - The file common options O(mode), O(owner), O(group) and so on apply to O(path) with O(state=present). A new
    file gets mode C(0666) minus the umask.
seealso:
  - name: dnsmasq manual page
    description: The C(nftset), C(server) and C(servers-file) options.
    link: https://thekelleys.org.uk/dnsmasq/docs/dnsmasq-man.html
"""

EXAMPLES = r"""
- name: Send two domain lists to two tunnels' sets (one file, flat layout)
  splitroute.vpn.dnsmasq_nftset:
    path: /etc/dnsmasq.d/splitroute.conf
    mode: "0644"
    check_sets: true
    groups:
      - name: wg0
        domains:
          - example.com
          - bücher.example
        sets:
          - {version: 4, table: splitroute, name: wg0_v4}
          - {version: 6, table: splitroute, name: wg0_v6}
        servers:
          - 10.8.0.1
      - name: ovpn0
        domains:
          - example.org
        sets:
          - {version: 4, table: splitroute, name: ovpn0_v4}
          - {version: 6, table: splitroute, name: ovpn0_v6}
  register: splitroute_dnsmasq_flat

- name: Two-tier layout, front resolver's servers-file (one server= line per domain)
  splitroute.vpn.dnsmasq_nftset:
    path: /etc/dnsmasq-front/servers.conf
    layout: front
    groups:
      - name: wg0
        domains: "{{ client_wg0_domains }}"
        back_server: 127.0.0.53#5301

- name: Two-tier layout, wg0 back resolver (catch-all nftset line, tunnel DNS as upstream)
  splitroute.vpn.dnsmasq_nftset:
    path: /etc/dnsmasq-wg0/nftset.conf
    layout: back
    check_sets: true
    netns: wg0
    groups:
      - name: wg0
        sets:
          - {version: 4, table: splitroute, name: wg0_v4}
          - {version: 6, table: splitroute, name: wg0_v6}
        servers:
          - 10.8.0.1

- name: Remove the file
  splitroute.vpn.dnsmasq_nftset:
    path: /etc/dnsmasq.d/splitroute.conf
    state: absent
"""

RETURN = r"""
path:
  description:
    - The managed file.
    - As for other file modules, Ansible adds its C(state) (V(file) or V(absent)) and, when it exists, its
      C(owner), C(group), C(mode) and C(size) to the result.
  returned: always
  type: str
  sample: /etc/dnsmasq.d/splitroute.conf
layout:
  description: The requested O(layout).
  returned: always
  type: str
  sample: flat
domain_count:
  description: Number of distinct domains written (0 for O(layout=back) and O(state=absent)).
  returned: always
  type: int
  sample: 2
domains_added:
  description:
    - Domains (normalised) that the new file has and the current file does not, sorted.
    - The current file's domains are read from its C(nftset=/.../) and C(server=/.../) lines.
  returned: always
  type: list
  elements: str
  sample: [example.com, xn--bcher-kva.example]
domains_removed:
  description: Domains the current file has and the new file does not, sorted.
  returned: always
  type: list
  elements: str
  sample: [old.example.net]
operations:
  description: What the module did, or would do in check mode.
  returned: always
  type: list
  elements: str
  sample: [write /etc/dnsmasq.d/splitroute.conf]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._dnsmasq import DnsmasqNftset


def main():
    set_options = dict(
        version=dict(type="int", required=True, choices=[4, 6]),
        family=dict(type="str", default="inet", choices=["inet", "ip", "ip6"]),
        table=dict(type="str", required=True),
        name=dict(type="str", required=True),
    )
    group_options = dict(
        name=dict(type="str", required=True),
        domains=dict(type="list", elements="str", default=[]),
        sets=dict(type="list", elements="dict", default=[], options=set_options),
        servers=dict(type="list", elements="str", default=[]),
        back_server=dict(type="str"),
    )
    argument_spec = dict(
        path=dict(type="path", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        layout=dict(type="str", default="flat", choices=["flat", "front", "back"]),
        groups=dict(type="list", elements="dict", default=[], options=group_options),
        check_sets=dict(type="bool", default=False),
        netns=dict(type="str"),
        dnsmasq_binary=dict(type="str", default="dnsmasq"),
    )
    check_types(argument_spec, add_file_common_args=True)
    module = AnsibleModule(
        argument_spec=argument_spec,
        add_file_common_args=True,
        supports_check_mode=True,
    )
    DnsmasqNftset(module).run()


if __name__ == "__main__":
    main()
