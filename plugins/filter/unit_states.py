# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: unit_states
short_description: Which of a role's units start, restart or reload after its files were written
version_added: 0.1.0
author:
  - splitroute maintainers (@splitroute)
description:
  - Used by the collection's roles between the tasks that write their files and the one
    M(splitroute.vpn.systemd_units) task that enables and starts their units in boot order. Returns that task's
    O(splitroute.vpn.systemd_units#module:units) - every unit of O(_input) in order, enabled, V(restarted) when a
    file in its O(triggers) C(restart) list is in O(changed), V(reloaded) when only one of its C(reload) list is,
    V(started) otherwise.
  - The same file provides C(changed_paths) - the absolute paths that registered results of
    M(splitroute.vpn.file_tree) (its C(path) with C(created), C(updated) and C(removed), directories left out) and of
    one-file modules that return C(path) (such as M(splitroute.vpn.dnsmasq_nftset)) changed - and C(units_with)
    (unit names to systemd_units' O(splitroute.vpn.systemd_units#module:units), each with the same C(enabled),
    C(state) and C(missing) keyword arguments).
options:
  _input:
    description: Unit names in boot order (the plan's C(units.start)).
    type: list
    elements: str
    required: true
  triggers:
    description:
      - Unit name -> C(restart) and C(reload), lists of the absolute paths the unit reads (the plan's
        C(units.triggers)).
    type: dict
    required: true
  changed:
    description: The absolute paths the run changed (C(changed_paths) of the writing tasks' results).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Bring the units up, restarting those whose files changed
  splitroute.vpn.systemd_units:
    units: >-
      {{ plan.units.start
         | splitroute.vpn.unit_states(plan.units.triggers, [etc_tree, unit_tree] | splitroute.vpn.changed_paths) }}
"""

RETURN = r"""
_value:
  description: The units, each C(name), C(enabled) (V(true)) and C(state) (V(started), V(restarted) or V(reloaded)).
  type: list
  elements: dict
"""

from ansible_collections.splitroute.vpn.plugins.module_utils._units import changed_paths, unit_states, units_with


class FilterModule:
    def filters(self):
        return {"unit_states": unit_states, "changed_paths": changed_paths, "units_with": units_with}
