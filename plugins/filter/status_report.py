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
  - Used by C(playbooks/status.yml) on hosts without the host program; the program's C(splitroute status) builds
    the same report from the same code (the collection's module_utils C(_status.py)) with its settings read from the
    roles' plans in C(/etc/splitroute). Reads what C(wg show all dump), C(ip -j link), C(ip -j rule), C(ip -j route show
    table all), C(ip -j netns list) and C(nft -j list table) printed on a host and returns what is in place - the
    WireGuard interfaces with their peers and last handshakes, the client's nftables sets with their element counts,
    each tunnel's chain from mark to rule to routing table, the gateway's rules and provider tables, and whether a
    blackhole default route (or another fail-closed default route, C(unreachable) or C(prohibit)) is armed behind
    each table, per address family.
  - A host with only the client role, only the gateway role or neither is reported as it is; a role with nothing on the
    host is C(configured=false). A command that failed or is missing is reported in C(errors), never raised.
  - Output it cannot read is skipped and said so, never raised, whatever its shape. Each piece is read on its own
    (an entry of the JSON of C(ip) or C(nft), a line of the dump, a setting), and one it cannot read (a number where a
    list belongs, a null address, a name with a control character) is left out as if the command had not printed it,
    with a note in C(unreadable) naming it. The rest is read as usual, so one odd interface name does not make
    every tunnel look missing. The same goes for output that is not JSON at all, and for wrong settings (left at
    their defaults).
  - No control character reaches C(lines) or C(metrics) raw. Names that are read have none (C(ip -j) prints most of
    them as they are); the host label and error texts are written with them as C(\xNN).
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
        as its one allowed IP), C(gateway_providers) (provider names, in the role's order), C(client_marks) (tunnel
        name -> its fwmark; a set whose rule sets a tunnel's mark is that tunnel's, whatever its name; without it a
        set belongs to the tunnel its name starts with, C(NAME_v4), C(NAME_v6), C(NAME_net4), C(NAME_net6)).
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
      C(unreadable) (the pieces left out, each a dict with C(input), the key of O(_input) or V(settings), and
      C(text), the note, also in C(lines)), C(lines) and C(metrics).
    - Metrics - C(splitroute_status_timestamp_seconds), C(splitroute_client_configured),
      C(splitroute_gateway_configured), C(splitroute_problems), C(splitroute_status_unreadable{what}) (pieces of
      each input left out, V(what) the key of O(_input) or V(settings); one series each, 0 when all was read),
      C(splitroute_nft_table_present{table}),
      C(splitroute_tunnel_up{interface}), C(splitroute_tunnel_peers{interface}),
      C(splitroute_tunnel_last_handshake_seconds{interface}) (0 = never),
      C(splitroute_tunnel_handshake_age_seconds{interface}) (seconds from it to the read; no series when never),
      C(splitroute_tunnel_rx_bytes{interface}),
      C(splitroute_tunnel_tx_bytes{interface}), C(splitroute_peer_last_handshake_seconds{interface,peer,name}),
      C(splitroute_peer_handshake_age_seconds{interface,peer,name}),
      C(splitroute_peer_rx_bytes), C(splitroute_peer_tx_bytes), C(splitroute_set_elements{table,set}),
      C(splitroute_rules{family}), C(splitroute_rule_present{role,name,family,table}),
      C(splitroute_route_present{table,family}), C(splitroute_blackhole_armed{table,family}),
      C(splitroute_netns_present{netns}).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.module_utils import _status


def status_report(raw, settings=None):
    try:
        return _status.status_report(raw, settings)
    except _status.StatusError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"status_report": status_report}
