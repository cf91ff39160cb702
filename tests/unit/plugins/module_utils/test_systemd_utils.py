"""The pure parts of _systemd: unit names, the request, reading `systemctl show`, and the plan."""

from __future__ import annotations

import itertools
import re

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _systemd as sd

# Captured from Debian 12 (systemd 252.39) in the lab image, with the module's own command:
#   systemctl show --property=Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload,CanReload -- \
#     dbus.service nothere.service ctrl-alt-del.target getty@tty1.service apt-daily.timer -.mount \
#     console-getty.service fresh1.service broken.service
# systemd prints the properties in its own order (CanReload before NeedDaemonReload), an alias under its
# unit's Id (ctrl-alt-del.target is reboot.target), a unit it does not know with an empty UnitFileState.
SHOWN_NAMES = [
    "dbus.service",
    "nothere.service",
    "ctrl-alt-del.target",
    "getty@tty1.service",
    "apt-daily.timer",
    "-.mount",
    "console-getty.service",
    "fresh1.service",
    "broken.service",
]
SHOWN = """\
Id=dbus.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=static
CanReload=yes
NeedDaemonReload=no

Id=nothere.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=
CanReload=no
NeedDaemonReload=no

Id=reboot.target
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=disabled
CanReload=no
NeedDaemonReload=no

Id=getty@tty1.service
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=enabled
CanReload=no
NeedDaemonReload=no

Id=apt-daily.timer
LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked
CanReload=no
NeedDaemonReload=no

Id=-.mount
LoadState=loaded
ActiveState=active
SubState=mounted
UnitFileState=
CanReload=yes
NeedDaemonReload=no

Id=console-getty.service
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=enabled-runtime
CanReload=no
NeedDaemonReload=no

Id=fresh1.service
LoadState=loaded
ActiveState=active
SubState=exited
UnitFileState=enabled
CanReload=no
NeedDaemonReload=yes

Id=broken.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=static
CanReload=no
NeedDaemonReload=no
"""
# systemctl show with a template name among the units: rc 1, the blocks before it, and on stderr
# "Failed to get properties: Unit name getty@.service is neither a valid invocation ID nor unit name."
PARTIAL = "Id=dbus.service\nLoadState=loaded\n"


# ---- systemctl show --------------------------------------------------------------------------


def test_show_is_read_by_position():
    units = sd.parse_show(SHOWN, SHOWN_NAMES)
    assert list(units) == SHOWN_NAMES
    report = {name: unit.report() for name, unit in units.items()}
    assert report["dbus.service"] == {
        "load": "loaded",
        "active": "active",
        "sub": "running",
        "unit_file": "static",
        "need_reload": False,
    }
    assert report["nothere.service"] == {
        "load": "not-found",
        "active": "inactive",
        "sub": "dead",
        "unit_file": "",
        "need_reload": False,
    }
    # the alias keeps the name it was asked by
    assert units["ctrl-alt-del.target"].id == "reboot.target"
    assert report["ctrl-alt-del.target"]["unit_file"] == "disabled"
    assert (units["apt-daily.timer"].load, units["apt-daily.timer"].unit_file) == ("masked", "masked")
    assert units["-.mount"].unit_file == "" and units["-.mount"].sub == "mounted"
    assert units["fresh1.service"].need_reload is True
    assert units["broken.service"].active == "failed"
    assert (units["dbus.service"].can_reload, units["getty@tty1.service"].can_reload) == (True, False)


def test_show_without_the_final_newline_and_with_extra_blank_lines():
    text = "\n\n" + SHOWN.replace("\n\n", "\n\n\n").rstrip("\n")
    units = sd.parse_show(text, SHOWN_NAMES)
    assert units["broken.service"].sub == "failed"


def test_show_argv_reads_every_property_after_double_dash():
    assert sd.show_argv("/bin/systemctl", ["-.mount", "a.service"]) == [
        "/bin/systemctl",
        "show",
        "--property=Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload,CanReload",
        "--",
        "-.mount",
        "a.service",
    ]


@pytest.mark.parametrize(
    ("text", "names", "message"),
    [
        (PARTIAL, ["dbus.service", "getty@.service"], r"^cannot read systemctl show: 1 blocks for 2 units \(dbus"),
        (SHOWN, SHOWN_NAMES[:-1], r"9 blocks for 8 units"),
        ("", ["a.service"], r"0 blocks for 1 units"),
        (SHOWN.replace("CanReload=no\n", "", 1), SHOWN_NAMES, r"no CanReload for nothere\.service$"),
        (SHOWN.replace("\n\nId=reboot", "\nId=reboot"), SHOWN_NAMES, r"Id twice in one block"),
        (SHOWN.replace("SubState=dead\n", "SubState dead\n", 1), SHOWN_NAMES, r"the line 'SubState dead' is not"),
        (
            SHOWN.replace("NeedDaemonReload=yes", "NeedDaemonReload=maybe"),
            SHOWN_NAMES,
            r"NeedDaemonReload='maybe' for fresh1\.service is not yes or no",
        ),
    ],
)
def test_show_output_that_does_not_fit_is_an_error(text, names, message):
    with pytest.raises(sd.UnitsError, match=message):
        sd.parse_show(text, names)


# ---- unit names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "splitroute-client.service",
        "wg-quick@wg0.service",
        "openvpn-client@provider.service",
        "fstrim.timer",
        "dnsmasq.socket",
        "multi-user.target",
        "splitroute-client-lists.path",
        "-.mount",
        "srv-a\\x2db.mount",
        "dev-sda1.device",
        "system.slice",
        "a:b_c.d.service",
        "x" * 247 + ".service",
    ],
)
def test_unit_names(name):
    assert sd.check_unit_name(name, "units[0].name") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("splitroute-client", r"'splitroute-client' is not a full unit name: it must end in a unit type such as"),
        ("a.sevrice", r"'a\.sevrice' is not a full unit name"),
        ("a.service.d", r"is not a full unit name"),
        (".service", r"'\.service' has no name before \.service$"),
        ("@x.service", r"'@x\.service' has no name before '@'$"),
        ("wg-quick@.service", r"is a template: give an instance, such as wg-quick@NAME\.service$"),
        ("a@b@c.service", r"contains '@': a unit name has only A-Z a-z 0-9 : - _ \. \\ and one @"),
        ("a b.service", r"contains ' '"),
        ("a/b.service", r"contains '/'"),
        ("bücher.service", r"contains 'ü'"),
        ("a\nb.service", r"contains a control character \(U\+000A\)"),
        ("a\x7f.service", r"control character \(U\+007F\)"),
        ("x" * 248 + ".service", r"is longer than 255 characters"),
        ("", r"must not be empty"),
        (5, r"must be a string, not int"),
        (True, r"must be a string, not bool"),
        (["a.service"], r"must be a string, not list"),
    ],
)
def test_bad_unit_names(name, message):
    error = sd.check_unit_name(name, "units[3].name")
    assert error is not None and error.startswith("units[3].name: ")
    assert re.search(message, error), error


# ---- the request -----------------------------------------------------------------------------


def test_want_keeps_the_order_and_reads_each_name_once():
    w = sd.want(
        {
            "units": [
                {"name": "b.service", "enabled": True, "state": "started"},
                {"name": "a.timer", "enabled": "no", "state": None, "missing": "ignore"},
            ],
            "query": ["systemd-resolved.service", "b.service"],
            "daemon_reload": "yes",
        }
    )
    assert [(e.index, e.name, e.enabled, e.state, e.missing) for e in w.entries] == [
        (0, "b.service", True, "started", "fail"),
        (1, "a.timer", False, None, "ignore"),
    ]
    assert w.names() == ["b.service", "a.timer", "systemd-resolved.service"]
    assert w.daemon_reload is True
    empty = sd.want({})
    assert (empty.entries, empty.query, empty.daemon_reload, empty.names()) == ([], [], False, [])


def test_want_reports_every_problem_at_once():
    with pytest.raises(sd.UnitsError) as info:
        sd.want(
            {
                "units": [
                    {"name": "a.service", "state": "running"},
                    {"name": "a.service"},
                    "b.service",
                    {"enabled": True},
                    {"name": "c.service", "enabled": "maybe", "missing": "skip", "mode": 1},
                    {"name": "wg@.service"},
                ],
                "query": ["x.service", "x.service", "y"],
                "daemon_reload": "sometimes",
            }
        )
    assert str(info.value).split("; ") == [
        "units[0].state: 'running' is not one of started, stopped, restarted, reloaded",
        "units[1].name: a.service is listed twice (also units[0])",
        "units[2]: must be a dictionary, not str",
        "units[3].name: is required",
        "units[4]: unknown key mode (known: name, enabled, state, missing)",
        "units[4].enabled: must be true or false, not 'maybe'",
        "units[4].missing: 'skip' is not one of fail, ignore",
        "units[5].name: 'wg@.service' is a template: give an instance, such as wg@NAME.service",
        "query[1]: x.service is listed twice (also query[0])",
        "query[2]: 'y' is not a full unit name: it must end in a unit type such as .service (one of .service, "
        ".socket, .target, .device, .mount, .automount, .swap, .timer, .path, .slice, .scope)",
        "daemon_reload: must be true or false, not 'sometimes'",
    ]


@pytest.mark.parametrize(("key", "value"), [("units", "a.service"), ("query", "a.service"), ("units", {"a": 1})])
def test_want_refuses_a_string_or_dict_for_a_list(key, value):
    with pytest.raises(sd.UnitsError, match=r"^%s: must be a list, not " % key):
        sd.want({key: value})


# ---- the plan --------------------------------------------------------------------------------


def unit(unit_file="disabled", active="inactive", load="loaded", need_reload=False, can_reload=True):
    sub = {"active": "running", "inactive": "dead", "failed": "failed"}.get(active, active)
    return sd.Unit("u.service", load, active, sub, unit_file, need_reload, can_reload)


def one(check_mode=False, have=None, **entry):
    """The steps for one unit u.service, or the UnitsError message."""
    w = sd.want({"units": [dict({"name": "u.service"}, **entry)]})
    try:
        return sd.plan(w, {"u.service": have or unit()}, check_mode).steps
    except sd.UnitsError as exc:
        return str(exc)


UNIT_FILE_STATES = {
    # UnitFileState: (enabled: true, enabled: false)
    "enabled": (None, "disable"),
    "enabled-runtime": ("enable", None),
    "linked": ("enable", None),
    "linked-runtime": ("enable", None),
    "disabled": ("enable", None),
    "static": (None, None),
    "indirect": (None, None),
    "generated": (None, None),
    "transient": (None, None),
    "alias": (None, None),
    "": (None, None),
    "masked": ("masked", None),
    "masked-runtime": ("masked", None),
    "bad": ("cannot", None),
}


@pytest.mark.parametrize(("unit_file", "enabled"), list(itertools.product(UNIT_FILE_STATES, (True, False, None))))
def test_enablement_for_every_unit_file_state(unit_file, enabled):
    expected = None if enabled is None else UNIT_FILE_STATES[unit_file][0 if enabled else 1]
    got = one(have=unit(unit_file), enabled=enabled)
    if expected == "masked":
        assert got == "units[0] u.service: is masked (UnitFileState=%s): unmask it before enabling it" % unit_file
    elif expected == "cannot":
        assert got == "units[0] u.service: cannot be enabled (UnitFileState=bad)"
    else:
        assert got == ([] if expected is None else [(expected, "u.service")])


ACTIVE_STATES = {
    # ActiveState: steps for started, stopped, restarted, reloaded
    "active": (None, "stop", "restart", "reload"),
    "reloading": (None, "stop", "restart", "reload"),
    "refreshing": (None, "stop", "restart", "reload"),
    "activating": (None, "stop", "restart", "start"),
    "deactivating": ("start", "stop", "restart", "start"),
    "inactive": ("start", None, "restart", "start"),
    "failed": ("start", None, "restart", "start"),
    "maintenance": ("start", None, "restart", "start"),
}


@pytest.mark.parametrize(("active", "index"), list(itertools.product(ACTIVE_STATES, range(4))))
def test_state_for_every_active_state(active, index):
    expected = ACTIVE_STATES[active][index]
    got = one(have=unit(active=active), state=sd.STATES[index])
    assert got == ([] if expected is None else [(expected, "u.service")])


def test_nothing_asked_is_nothing_done():
    assert one(have=unit("enabled", "active")) == []
    assert one(have=unit("masked", "inactive", load="masked")) == []


def test_enablement_comes_first_then_the_state_in_list_order():
    w = sd.want(
        {
            "units": [
                {"name": "c.service", "enabled": True, "state": "started"},
                {"name": "a.service", "enabled": False, "state": "stopped"},
                {"name": "b.timer", "state": "restarted"},
                {"name": "d.service", "enabled": True, "state": "reloaded"},
            ]
        }
    )
    have = {
        "c.service": unit("disabled", "inactive"),
        "a.service": unit("enabled", "active"),
        "b.timer": unit("enabled", "active"),
        "d.service": unit("disabled", "active"),
    }
    p = sd.plan(w, have, check_mode=False)
    assert p.actions() == [
        "enable c.service",
        "start c.service",
        "disable a.service",
        "stop a.service",
        "restart b.timer",
        "enable d.service",
        "reload d.service",
    ]
    assert p.diff[0] == {
        "before_header": "c.service",
        "after_header": "c.service",
        "before": "enabled: disabled\nactive: inactive\n",
        "after": "enabled: enabled\nactive: active\n",
    }
    assert [(d["before"], d["after"]) for d in p.diff[1:]] == [
        ("enabled: enabled\nactive: active\n", "enabled: disabled\nactive: inactive\n"),
        ("enabled: enabled\nactive: active\n", "enabled: enabled\nactive: active (restarted)\n"),
        ("enabled: disabled\nactive: active\n", "enabled: enabled\nactive: active (reloaded)\n"),
    ]


def test_a_unit_without_a_unit_file_shows_a_dash_in_the_diff():
    w = sd.want({"units": [{"name": "-.mount", "state": "restarted"}]})
    p = sd.plan(w, {"-.mount": unit("", "active")}, check_mode=False)
    assert p.diff[0]["before"] == "enabled: -\nactive: active\n"


def test_not_found_units_fail_together_before_anything():
    w = sd.want(
        {
            "units": [
                {"name": "a.service", "enabled": True, "state": "started"},
                {"name": "gone.service", "state": "stopped"},
                {"name": "dnsmasq.service", "enabled": False, "state": "stopped", "missing": "ignore"},
                {"name": "new.service", "enabled": True},
            ]
        }
    )
    have = {
        "a.service": unit(),
        "gone.service": unit("", load="not-found"),
        "dnsmasq.service": unit("", load="not-found"),
        "new.service": unit("", load="not-found"),
    }
    with pytest.raises(sd.UnitsError) as info:
        sd.plan(w, have, check_mode=False)
    assert str(info.value) == (
        "not found (LoadState=not-found): gone.service, new.service; give missing: ignore to units that may not "
        "be installed"
    )
    # check mode: a unit the play would write first is planned as disabled and inactive
    p = sd.plan(w, have, check_mode=True)
    assert p.actions() == ["enable a.service", "start a.service", "enable new.service"]
    assert p.diff[1] == {
        "before_header": "new.service",
        "after_header": "new.service",
        "before": "enabled: not-found\nactive: inactive\n",
        "after": "enabled: enabled\nactive: inactive\n",
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [("started", ["start"]), ("restarted", ["restart"]), ("reloaded", ["start"]), ("stopped", [])],
)
def test_not_found_in_check_mode_is_what_would_be_done(state, expected):
    got = one(check_mode=True, have=unit("", load="not-found"), enabled=True, state=state)
    assert got == [("enable", "u.service")] + [(step, "u.service") for step in expected]
    assert one(check_mode=True, have=unit("", load="not-found"), enabled=False, state=state, missing="ignore") == []


@pytest.mark.parametrize("state", ["started", "restarted", "reloaded"])
def test_a_masked_unit_cannot_run(state):
    verb = {"started": "start", "restarted": "restart", "reloaded": "start"}[state]
    got = one(have=unit("masked", "inactive", load="masked"), state=state)
    assert got == "units[0] u.service: is masked: systemctl cannot %s it" % verb
    # a masked unit that still runs can be stopped, and is running already
    assert one(have=unit("masked", "active", load="masked"), state="stopped") == [("stop", "u.service")]
    assert one(have=unit("masked", "active", load="masked"), state="started") == []


@pytest.mark.parametrize("load", ["bad-setting", "error"])
def test_a_unit_systemd_could_not_load_cannot_start(load):
    got = one(have=unit("disabled", "inactive", load=load), state="started")
    assert got == (
        "units[0] u.service: systemd could not load it (LoadState=%s): systemctl cannot start it; see systemctl "
        "status u.service" % load
    )
    assert one(have=unit("disabled", "active", load=load), state="stopped") == [("stop", "u.service")]
    # in check mode a unit file changed on disk may be fixed by the daemon-reload that a real run does first
    stale = unit("disabled", "inactive", load=load, need_reload=True)
    assert one(check_mode=True, have=stale, state="started") == [("start", "u.service")]
    assert isinstance(one(check_mode=False, have=stale, state="started"), str)


def test_a_running_unit_that_cannot_reload():
    got = one(have=unit("enabled", "active", can_reload=False), state="reloaded")
    assert got == "units[0] u.service: cannot be reloaded (CanReload=no): use state restarted"
    # not running: reloaded starts it, which needs no reload support
    assert one(have=unit("enabled", "inactive", can_reload=False), state="reloaded") == [("start", "u.service")]


def test_every_refusal_is_reported_at_once():
    w = sd.want(
        {
            "units": [
                {"name": "m.service", "enabled": True, "state": "started"},
                {"name": "r.service", "state": "reloaded"},
                {"name": "x.service"},
            ]
        }
    )
    have = {
        "m.service": unit("masked", "inactive", load="masked"),
        "r.service": unit("static", "active", can_reload=False),
        "x.service": unit("", load="not-found"),
    }
    with pytest.raises(sd.UnitsError) as info:
        sd.plan(w, have, check_mode=False)
    assert str(info.value).split("; ")[:4] == [
        "units[0] m.service: is masked (UnitFileState=masked): unmask it before enabling it",
        "units[0] m.service: is masked: systemctl cannot start it",
        "units[1] r.service: cannot be reloaded (CanReload=no): use state restarted",
        "not found (LoadState=not-found): x.service",
    ]


# ---- the host --------------------------------------------------------------------------------


def test_check_host(tmp_path):
    assert sd.check_host(None, str(tmp_path)).startswith("systemctl was not found on this host")
    missing = tmp_path / "no-systemd"
    for systemctl in ("/usr/bin/systemctl", None):  # no systemd running is the first thing to say
        message = sd.check_host(systemctl, str(missing))
        assert message.startswith("this host is not run by systemd (%s does not exist; PID 1 is " % missing)
    assert sd.check_host("/usr/bin/systemctl", str(tmp_path)) is None
