"""splitroute.vpn.systemd_units run as Ansible runs it, on this machine, which systemd does not run.

What needs a running systemd is in tests/integration/test_systemd_units.py, in a container whose PID 1 is
systemd (this file's name differs from it because pytest needs distinct basenames). Here: every input is
checked first, on any host, and a host without systemd is a clear failure, not a systemctl message.
"""

from __future__ import annotations

import os

import pytest

GOOD = {
    "units": [
        {"name": "splitroute-client.service", "enabled": True, "state": "started"},
        {"name": "dnsmasq.service", "enabled": False, "state": "stopped", "missing": "ignore"},
    ],
    "query": ["systemd-resolved.service"],
}
no_systemd = pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="this machine is run by systemd")


@pytest.mark.parametrize("check", [False, True])
def test_bad_input_fails_before_the_host_is_looked_at(module, check):
    result = module(
        "systemd_units",
        {
            "units": [
                {"name": "splitroute-client", "enabled": True},
                {"name": "wg-quick@.service", "state": "started"},
                {"name": "a.service"},
                {"name": "a.service", "state": "stopped"},
            ],
            "query": ["bad name.service"],
        },
        check=check,
        expect_fail=True,
    )
    assert result["msg"] == (
        "invalid input, nothing was changed: units[0].name: 'splitroute-client' is not a full unit name: it must "
        "end in a unit type such as .service (one of .service, .socket, .target, .device, .mount, .automount, "
        ".swap, .timer, .path, .slice, .scope); units[1].name: 'wg-quick@.service' is a template: give an "
        "instance, such as wg-quick@NAME.service; units[3].name: a.service is listed twice (also units[2]); "
        "query[0]: 'bad name.service' contains ' ': a unit name has only A-Z a-z 0-9 : - _ . \\ and one @ "
        "before an instance"
    )
    assert (result["changed"], result["actions"], result["units"]) == (False, [], {})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"units": "a.service"}, "units: must be a list, not str (write ['a.service'] for a list of one)"),
        ({"units": [{"name": ["a.service"]}]}, "units[0].name: must be a string, not list"),
        ({"units": ["a.service"]}, "units[0]: must be a dictionary, not str"),
        ({"query": "a.service"}, "query: must be a list, not str (write ['a.service'] for a list of one)"),
    ],
)
def test_wrong_types_are_named(module, args, message):
    result = module("systemd_units", args, expect_fail=True)
    assert result["msg"] == "invalid arguments, nothing was changed: %s" % message


def test_choices_and_keys_are_checked(module):
    result = module("systemd_units", {"units": [{"name": "a.service", "state": "running"}]}, expect_fail=True)
    assert "value of state must be one of: started, stopped, restarted, reloaded, got: running" in result["msg"]
    result = module("systemd_units", {"units": [{"name": "a.service", "mode": "x"}]}, expect_fail=True)
    assert "Unsupported parameters" in result["msg"] and "mode" in result["msg"]


@no_systemd
@pytest.mark.parametrize("check", [False, True])
def test_a_host_that_systemd_does_not_run_is_a_clear_failure(module, check):
    result = module("systemd_units", GOOD, check=check, expect_fail=True)
    assert result["msg"].startswith("this host is not run by systemd (/run/systemd/system does not exist; PID 1 is "), (
        result["msg"]
    )
    assert result["msg"].endswith("): there are no units to manage")
    assert (result["changed"], result["actions"], result["units"]) == (False, [], {})
