#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: systemd_units
short_description: Enable, disable, start, stop, restart and reload many systemd units in one task
version_added: 0.1.0
description:
  - Manages whether each unit of O(units) is enabled and whether it runs, in one task. All the units, and the
    O(query) units, are read with one C(systemctl show); a run with nothing to do costs that one call. A loop of
    M(ansible.builtin.systemd_service) costs a round trip to the host per unit, and
    M(ansible.builtin.service_facts) alone takes seconds.
  - The units are handled in list order, and for each unit the enablement first, then its state, one C(systemctl)
    call per action; list them in the order they must start.
  - Every option is checked before anything is done, and so is everything C(systemctl) would refuse once the
    units are read (a unit that is not found, a masked unit to enable or start, a unit that cannot reload). The
    module then fails naming every such unit, and changes nothing but a daemon-reload (which comes first, see
    below).
  - When a unit of O(units) reports C(NeedDaemonReload=yes) (its unit file or a drop-in changed on disk), the
    module runs C(systemctl daemon-reload) first and reads the units again, so an edited unit file is never left
    unloaded. The O(query) units do not trigger it.
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
attributes:
  check_mode:
    description:
      - Reads the units and reports the actions a real run would take, running none of them.
      - A unit that is not found is planned as a disabled, stopped unit even with O(units[].missing=fail), so a
        check run of a play that would write the unit file first does not fail on a new host.
      - A daemon-reload is reported, not run, so a unit file changed on disk is judged by what systemd has loaded.
  diff_mode:
    description:
      - One diff per unit that changes, C(enabled:) (its UnitFileState) and C(active:) (its ActiveState) before
        and after, and one line for a daemon-reload.
  platform:
    description: Linux hosts run by systemd (C(/run/systemd/system) exists); C(systemctl) is called for everything.
options:
  units:
    description:
      - The units to manage, in the order the actions run.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - A full unit name with its type, such as V(splitroute-client.service), V(wg-quick@wg0.service),
            V(fstrim.timer), V(dnsmasq.socket), V(multi-user.target), V(srv.mount).
          - At most 255 characters, letters, digits, C(:), C(-), C(_), C(.) and the backslash of systemd's escapes,
            and one C(@) between a template's name and its instance; a template without its instance
            (V(wg-quick@.service)) is refused.
          - Each name may be listed once.
        type: str
        required: true
      enabled:
        description:
          - V(true) runs C(systemctl enable) unless the unit is enabled (UnitFileState C(enabled)). A unit that
            is not meant to be enabled (C(static), C(indirect), C(generated), C(transient), C(alias), or without a
            unit file) is left as it is and is no change. C(enabled-runtime) and C(linked) units are enabled (they
            are not enabled at the next boot). A masked unit is an error.
          - V(false) runs C(systemctl disable) when the unit is C(enabled); anything else is no change. It does not
            remove an C(enabled-runtime) link in C(/run) (C(systemctl disable) cannot) nor a C(linked) unit's link.
          - Omitted, the enablement is left as it is.
        type: bool
      state:
        description:
          - V(started) runs C(systemctl start) unless the unit is C(active), C(activating), C(reloading) or
            C(refreshing).
          - V(stopped) runs C(systemctl stop) unless the unit is C(inactive), C(failed) or C(maintenance) (a
            failed unit is not running; it stays failed).
          - V(restarted) always runs C(systemctl restart), a change every time.
          - V(reloaded) runs C(systemctl reload) when the unit is active (a change every time), otherwise
            C(systemctl start). A running unit that cannot reload (C(CanReload=no)) is an error.
          - A masked unit cannot be started, restarted or reloaded (an error); it can be stopped.
          - Omitted, the state is left as it is.
        type: str
        choices: [started, stopped, restarted, reloaded]
      missing:
        description:
          - What to do when systemd does not know the unit (C(LoadState=not-found)).
          - V(fail) fails before any change, naming every such unit (not in check mode, see the attributes).
          - V(ignore) makes it no change and no error, for units that may not be installed, such as the
            distribution's C(dnsmasq.service).
        type: str
        choices: [fail, ignore]
        default: fail
  query:
    description:
      - Units that are only read, for their state in RV(units); a unit that is not found is no error.
      - Names as for O(units[].name). A name may be both here and in O(units).
    type: list
    elements: str
    default: []
  daemon_reload:
    description:
      - Run C(systemctl daemon-reload) before anything else, a change every time.
      - Not needed after writing a new unit file (systemd loads it when the module asks for it) nor after
        editing one of the O(units) (see C(NeedDaemonReload) in the description); needed when something else
        must be read again, such as the files of units not in O(units) or a generator's input (C(/etc/fstab)).
    type: bool
    default: false
notes:
  - C(systemctl enable) and C(disable) reload the systemd manager themselves, as they always do.
  - The result's RV(units) is the state as read before any action but the daemon-reload of O(daemon_reload).
seealso:
  - module: ansible.builtin.systemd_service
  - module: ansible.builtin.service_facts
  - name: systemctl(1)
    description: The states and what C(is-enabled) prints.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemctl.html
"""

EXAMPLES = r"""
- name: Enable and start the client's units, in boot order
  splitroute.vpn.systemd_units:
    units:
      - {name: splitroute-client-boot.service, enabled: true, state: started}
      - {name: wg-quick@wg0.service, enabled: true, state: started}
      - {name: splitroute-client-refresh.timer, enabled: true, state: started}
    query: [systemd-resolved.service]
  register: client_units

- name: Use systemd-resolved's state
  ansible.builtin.debug:
    msg: "resolved is {{ client_units.units['systemd-resolved.service'].active }}"

- name: Stop and disable the distribution's dnsmasq if it is installed
  splitroute.vpn.systemd_units:
    units:
      - {name: dnsmasq.service, enabled: false, state: stopped, missing: ignore}

- name: Reload the units written by the role and restart the tunnel
  splitroute.vpn.systemd_units:
    daemon_reload: true
    units:
      - {name: wg-quick@wg0.service, state: restarted}
"""

RETURN = r"""
units:
  description:
    - Every unit of O(units) and O(query), as read before any action (after the daemon-reload of
      O(daemon_reload)), by name.
    - C(load), C(active), C(sub) and C(unit_file) are systemd's LoadState, ActiveState, SubState and UnitFileState
      (C(unit_file) is empty for a unit without a unit file); C(need_reload) is NeedDaemonReload.
    - A unit systemd does not know has C(load) V(not-found).
  returned: always
  type: dict
  sample:
    splitroute-client.service: {load: loaded, active: inactive, sub: dead, unit_file: disabled, need_reload: false}
    dnsmasq.service: {load: not-found, active: inactive, sub: dead, unit_file: "", need_reload: false}
actions:
  description:
    - The actions run, in order (in check mode, the actions a real run would take). After a failure, the ones
      done before it.
  returned: always
  type: list
  elements: str
  sample: [daemon-reload, enable splitroute-client.service, start splitroute-client.service]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._systemd import MISSING, STATES, SystemdUnits


def main():
    argument_spec = dict(
        units=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                name=dict(type="str", required=True),
                enabled=dict(type="bool"),
                state=dict(type="str", choices=list(STATES)),
                missing=dict(type="str", choices=list(MISSING), default="fail"),
            ),
        ),
        query=dict(type="list", elements="str", default=[]),
        daemon_reload=dict(type="bool", default=False),
    )
    check_types(argument_spec)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    SystemdUnits(module).run()


if __name__ == "__main__":
    main()
