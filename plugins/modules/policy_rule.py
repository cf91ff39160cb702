#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: policy_rule
short_description: Manage Linux policy routing rules and the routes of routing tables
version_added: 0.1.0
description:
  - Manages C(ip rule) entries (the routing policy database) and the routes of numbered routing tables, for IPv4
    and IPv6, through netlink (pyroute2); no C(ip) commands are run.
  - Uses the resource-module states V(merged), V(replaced), V(overridden), V(deleted) and V(gathered).
    O(state=overridden) only ever acts inside an explicit O(scope), so a play never deletes rules it does not own.
  - Every rule and route is validated before the first change is made, and a run that fails part way undoes what
    it did (see the notes).
  - The kernel's own rules (priorities 0, 32766 and 32767) and the routes of its tables V(main), V(local) and
    V(default) (and table 0) are never removed unless a task with O(state=deleted) names that exact rule or route;
    a O(scope) of O(state=overridden) or O(state=deleted) may not include them.
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
  - splitroute.vpn._common.netns
  - splitroute.vpn._common.pyroute2
options:
  rules:
    description:
      - Rules to manage. A rule is identified by all of its fields; O(rules[].priority) is required
        (except with O(state=deleted)).
      - A rule without O(rules[].from) or O(rules[].to) applies to the families in O(rules[].family); one with an
        address applies to that address's family.
      - A list of dicts. The module checks the type of every field itself, and its message names the field's
        path, such as C(rules[2].table); nothing is converted to text or split at commas.
    type: raw
    default: []
    suboptions:
      priority:
        description: Rule priority (C(ip rule ... priority)); lower runs first.
        type: int
      family:
        description: V(4), V(6) or V(both). Taken from the addresses when they are given.
        type: str
        choices: ["4", "6", both]
      from:
        description: Source network in CIDR notation, or V(all).
        type: str
      to:
        description: Destination network in CIDR notation, or V(all).
        type: str
      fwmark:
        description:
          - Firewall mark to match, as a number or a string of one (V(0x1) notation is fine).
          - V(0) with the default mask matches packets that carry no mark.
        type: str
      fwmask:
        description: Mask for O(rules[].fwmark). Defaults to all ones.
        type: str
      iif:
        description: Incoming interface name (V(lo) matches locally generated traffic).
        type: str
      oif:
        description: Outgoing interface name (for sockets bound to a device).
        type: str
      uidrange:
        description: Local user ids, V(1000-1000) or a single number.
        type: str
      ipproto:
        description: IP protocol, by name (V(tcp), V(udp), V(icmp), V(ipv6-icmp), V(sctp), V(gre), V(esp)) or number.
        type: str
      sport:
        description: Source port or range (V(1000-2000)); needs O(rules[].ipproto) tcp, udp or sctp.
        type: str
      dport:
        description: Destination port or range; needs O(rules[].ipproto) tcp, udp or sctp.
        type: str
      invert:
        description: Invert the selector (C(ip rule add not ...)).
        type: bool
      suppress_prefixlength:
        description: Reject lookup results with a prefix length at or below this (V(0) ignores default routes).
        type: int
      action:
        description:
          - What the rule does; V(lookup) when omitted (with O(state=deleted), omitted matches any action).
        type: str
        choices: [lookup, blackhole, unreachable, prohibit]
      table:
        description: Routing table id or name (from rt_tables or O(table_names)) for O(rules[].action=lookup).
        type: str
  routes:
    description:
      - Routes to manage inside numbered routing tables. A route is identified by all of its fields.
      - A list of dicts, checked field by field like O(rules).
    type: raw
    default: []
    suboptions:
      table:
        description: Routing table id or name.
        type: str
        required: true
      dest:
        description: V(default) or a destination network in CIDR notation.
        type: str
        required: true
      family:
        description: V(4), V(6) or V(both) for V(default) routes without O(routes[].via).
        type: str
        choices: ["4", "6", both]
      type:
        description:
          - Route type; V(unicast) when omitted (with O(state=deleted), omitted matches any type).
          - A V(blackhole) route at a higher metric behind the tunnel's route makes a table fail closed.
        type: str
        choices: [unicast, blackhole, unreachable, prohibit]
      dev:
        description: Output interface of a V(unicast) route. It must exist.
        type: str
      via:
        description:
          - Gateway address of a V(unicast) route.
          - A link-local IPv6 gateway needs its interface, as O(routes[].dev) or written V(fe80::1%wg0); when both
            are given they must agree. No other address takes a V(%) scope.
        type: str
      metric:
        description:
          - Route metric (priority). Defaults to the kernel's default, 0 for IPv4 and 1024 for IPv6.
          - The kernel stores an IPv6 route given metric V(0) with metric 1024, so V(0) means 1024 for IPv6.
        type: int
  scope:
    description:
      - What this play owns. Required with O(state=overridden).
      - With O(state=deleted) and no O(rules)/O(routes), everything in scope is deleted.
      - With O(state=gathered) it limits what is returned.
      - With O(state=overridden) and O(state=deleted) it may not hold the kernel's tables (0, V(default) 253,
        V(main) 254, V(local) 255) nor its rule priorities (0, 32766, 32767).
      - A dict, checked field by field like O(rules).
    type: raw
    suboptions:
      tables:
        description: Routing tables (ids or names). Rules looking up these tables, and all routes in them, are in scope.
        type: list
        elements: str
      priorities:
        description: A priority range such as V(1000-1099). Rules with a priority in it are in scope.
        type: str
  table_names:
    description:
      - Names for routing tables, a dict of name to id such as C(wg0=100), written to C(/etc/iproute2/rt_tables)
        when missing. A name or id already taken by another entry is an error.
      - A line of the rt_tables files that is not C(ID NAME) is skipped with a warning.
      - The names can be used in O(rules[].table), O(routes[].table) and O(scope.tables).
      - A dict, checked like O(rules).
    type: raw
  state:
    description:
      - V(merged) adds the listed rules and routes that are missing.
      - V(replaced) makes the rules at each listed priority (per family), and the routes for each listed destination
        (per table and family), exactly the listed ones. It refuses the kernel's priorities and tables.
      - V(overridden) makes everything inside O(scope) exactly the listed rules and routes.
      - V(deleted) removes live entries that match a listed one in every field it gives (unlisted fields match
        anything), or everything in O(scope) when nothing is listed.
      - V(gathered) returns the rules (in O(scope) when given) and the routes of the scoped and listed tables.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered]
    default: merged
notes:
  - Changes are made one netlink request at a time, in an order that keeps what is there in place as long as it
    can. A route that takes the place of the only route with its destination and metric replaces it atomically
    (C(ip route replace)); other new routes and rules go in before the old ones are deleted, except in a
    destination and metric that holds several routes, which is emptied first.
  - All validation happens before the first request. When the kernel refuses a request, or the rules and routes
    read back differ from the plan, what was done is undone, the result is read back again, and the error says
    what failed and whether the rules and routes are as they were; RV(commands_done) lists the requests made.
seealso:
  - module: splitroute.vpn.nft_set
  - name: ip-rule(8)
    description: The routing policy database.
    link: https://man7.org/linux/man-pages/man8/ip-rule.8.html
"""

EXAMPLES = r"""
- name: Send marked traffic to table 100, where the tunnel is the default route and a blackhole is behind it
  splitroute.vpn.policy_rule:
    table_names: {wg0: 100}
    rules:
      - {priority: 1000, fwmark: "0x1", table: wg0}
    routes:
      - {table: wg0, dest: default, dev: wg0, metric: 10}
      - {table: wg0, dest: default, type: blackhole, metric: 100}

- name: Own priorities 1000-1099 and table 100 exactly (anything else there is removed)
  splitroute.vpn.policy_rule:
    scope:
      priorities: 1000-1099
      tables: ["100"]
    rules:
      - {priority: 1000, fwmark: "0x1", table: "100"}
      - {priority: 1010, uidrange: 1001-1001, table: "100"}
    routes:
      - {table: "100", dest: default, dev: wg0}
    state: overridden

- name: Peers' VPN range looks up the provider's table; peer-to-peer traffic stays in main first
  splitroute.vpn.policy_rule:
    rules:
      - {priority: 100, from: 10.4.0.0/24, to: 10.4.0.0/24, table: main}
      - {priority: 200, from: 10.4.0.128/25, table: "200"}

- name: Tear down everything in table 100 and at priorities 1000-1099
  splitroute.vpn.policy_rule:
    scope: {priorities: 1000-1099, tables: ["100"]}
    state: deleted

- name: Read what is in place
  splitroute.vpn.policy_rule:
    scope: {tables: ["100"]}
    state: gathered
  register: policy
"""

RETURN = r"""
commands:
  description:
    - The changes made (or, in check mode, that would be made), in C(ip) notation, in the order they are made.
    - Each starts with C(add), C(replace) (a route that takes another's place) or C(del).
  returned: always
  type: list
  elements: str
  sample:
    - add ip -4 route table 100 default dev wg0 metric 0
    - add ip -4 rule priority 1000 from all fwmark 0x1/0xffffffff lookup 100
commands_done:
  description: The changes that were made, and then undone, before the kernel refused one.
  returned: on failure while applying
  type: list
  elements: str
gathered:
  description: Rules and routes as they are, with O(state=gathered).
  returned: when O(state=gathered)
  type: dict
  sample:
    rules: [{"family": "4", "priority": 1000, "fwmark": 1, "fwmask": 4294967295, "action": "lookup", "table": 100}]
    routes: [{"family": "4", "table": 100, "dest": "0.0.0.0/0", "type": "blackhole", "metric": 100}]
diff:
  description: Rules (in scope, or at the priorities touched) and routes of the tables involved, before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._policy_rule import PolicyRouting


def main():
    # rules, routes, scope and table_names come as the task gives them (raw): the module_utils
    # checks each field's type and names its path (routes[2].via: must be a string), where
    # Ansible's conversions would turn a list into "['...']" or split a string at its commas.
    module = AnsibleModule(
        argument_spec={
            "rules": {"type": "raw", "default": []},
            "routes": {"type": "raw", "default": []},
            "scope": {"type": "raw"},
            "table_names": {"type": "raw"},
            "state": {
                "type": "str",
                "default": "merged",
                "choices": ["merged", "replaced", "overridden", "deleted", "gathered"],
            },
            "netns": {"type": "str"},
        },
        supports_check_mode=True,
    )
    module.exit_json(**PolicyRouting(module).run())


if __name__ == "__main__":
    main()
