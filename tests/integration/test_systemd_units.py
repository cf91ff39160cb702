"""splitroute.vpn.systemd_units against a real systemd: a throwaway container of the lab's image.

This machine's PID 1 is not systemd; the lab image's containers boot one (/sbin/init). The test starts its
own container (srtest-units-PID: not a lab host, no network, not privileged), writes throwaway unit files
into its /etc/systemd/system, and runs the module in it with Debian's /usr/bin/python3. The container is
removed at the end.

Most runs call the module directly in the container (python3 -m, arguments on stdin, this worktree and
ansible-core's module_utils mounted read-only): 0.3 s a run, where `ansible` with the containers.podman
connection takes 2-3 s. test_as_a_play_task runs it that way too, through AnsiballZ, as a play does.

The image is the one lab/image.sh names for its current recipe, else any lab image this machine has;
only when there is none is it built with lab/image.sh (which takes minutes and needs the Debian mirror).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import ansible
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
COLLECTIONS = ROOT / ".cache" / "collections"
NAME = "srtest-units-%d" % os.getpid()
IMAGE_REPO = "localhost/srlab-debian"
MOUNT = "/srv/srtest"  # in the container: MOUNT/ansible (ansible-core), MOUNT/ansible_collections/splitroute/vpn
ENV = dict(
    os.environ,
    CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", str(ROOT / "lab" / "containers.conf")),
    ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
    ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    ANSIBLE_NOCOLOR="1",
)

ONESHOT = """\
[Unit]
Description=srtest oneshot
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
"""
DAEMON = """\
[Unit]
Description={description}
[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/sh -c 'echo reloaded >> /run/srtest-reloads'
[Install]
WantedBy=multi-user.target
"""
TIMER = """\
[Timer]
OnCalendar=daily
[Install]
WantedBy=timers.target
"""
FAILING = """\
[Unit]
Description=srtest failing
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo srtest-f refuses >&2; exit 3'
"""


def podman(*args, check=False, **kw):
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=ENV, check=check, **kw)


def lab_image():
    ref = subprocess.run(
        ["bash", str(ROOT / "lab" / "image.sh"), "--ref"], capture_output=True, text=True, env=ENV, check=True
    ).stdout.strip()
    if podman("image", "exists", ref).returncode == 0:
        return ref
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=" + IMAGE_REPO)
    others = [line for line in listed.stdout.split() if line.startswith(IMAGE_REPO + ":")]
    if others:
        return others[0]
    build = subprocess.run(
        ["bash", str(ROOT / "lab" / "image.sh")], capture_output=True, text=True, env=ENV, timeout=1800, check=False
    )
    if build.returncode != 0 or not build.stdout.strip():
        pytest.fail("no lab image %s on this machine, and lab/image.sh could not build it:\n%s" % (ref, build.stderr))
    return build.stdout.split()[-1]


class Host:
    """The container: shell commands and the units' state, read with systemctl itself."""

    name = NAME

    def sh(self, script, *args, check=True, stdin=None):
        proc = podman("exec", "-i", NAME, "sh", "-c", script, "sh", *args, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError("%r failed in %s: %s%s" % (script, NAME, proc.stdout, proc.stderr))
        return proc.stdout

    def write_unit(self, unit, text):
        self.sh('cat > "/etc/systemd/system/$1"', unit, stdin=text)

    def prop(self, unit, prop):
        return self.sh('systemctl show --property="$1" --value -- "$2"', prop, unit).strip()

    def state(self, *units):
        """{unit: (UnitFileState, ActiveState)}"""
        script = (
            'for u; do printf "%s|%s\\n" "$(systemctl show --property=UnitFileState --value -- "$u")" '
            '"$(systemctl show --property=ActiveState --value -- "$u")"; done'
        )
        lines = self.sh(script, *units).splitlines()
        return {unit: tuple(line.split("|")) for unit, line in zip(units, lines)}


@pytest.fixture(scope="module")
def host():
    image = lab_image()
    podman("rm", "--force", "--time", "0", "--ignore", NAME)
    started = podman(
        "run", "--detach", "--name", NAME, "--systemd=always", "--network=none", "--no-hosts",
        "--hostname", "srtest-units",
        "--volume", "%s:%s/ansible:ro" % (Path(ansible.__file__).parent, MOUNT),
        "--volume", "%s:%s/ansible_collections/splitroute/vpn:ro" % (ROOT, MOUNT),
        image, "/sbin/init",
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail("podman run %s failed: %s" % (image, started.stderr))
    try:
        deadline = time.monotonic() + 60
        while True:  # the first calls fail until systemd's bus is up
            booted = podman("exec", NAME, "systemctl", "is-system-running", "--wait", timeout=60)
            if booted.stdout.strip() in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                pytest.fail("systemd did not boot in %s: %s%s" % (NAME, booted.stdout, booted.stderr))
            time.sleep(0.2)
        yield Host()
    finally:
        podman("rm", "--force", "--time", "0", "--ignore", NAME)


def _checked(result, fail):
    if fail:
        assert result.get("failed"), result
    else:
        assert not result.get("failed"), result.get("msg")
    return result


def run(args, check=False, fail=False):
    """The module in the container, called directly; its result."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=True)}
    proc = podman(
        "exec", "-i", "--env", "PYTHONPATH=" + MOUNT, NAME,
        "/usr/bin/python3", "-m", "ansible_collections.splitroute.vpn.plugins.modules.systemd_units",
        input=json.dumps(payload), timeout=120,
    )  # fmt: skip
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("the module printed no JSON (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return _checked(result, fail)


def run_task(args, check=False, fail=False):
    """The module in the container as a play's task runs it (ansible, containers.podman, AnsiballZ)."""
    cmd = [
        "ansible", "all", "-i", NAME + ",", "-c", "containers.podman.podman",
        "-e", "ansible_python_interpreter=/usr/bin/python3",
        "-m", "splitroute.vpn.systemd_units", "-a", json.dumps(args), "--diff",
    ] + (["--check"] if check else [])  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120, check=False)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][NAME]
    except (ValueError, KeyError, IndexError):
        pytest.fail("ansible printed no result (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return _checked(result, fail)


def four(args, unchanged):
    """check (changed), real (changed), check (no change), real (no change); UNCHANGED() asserts that the
    first check changed nothing. Returns the first check's result and the first real one's."""
    first_check = run(args, check=True)
    assert first_check["changed"] is True, first_check
    unchanged()
    real = run(args)
    assert real["changed"] is True and real["actions"] == first_check["actions"], (first_check, real)
    for check in (True, False):
        again = run(args, check=check)
        assert (again["changed"], again["actions"]) == (False, []), again
    return first_check, real


def test_enable_and_start_in_list_order_four_times(host):
    for unit in ("srtest-a.service", "srtest-b.service", "srtest-t.service"):
        host.write_unit(unit, ONESHOT)
    host.write_unit("srtest-t.timer", TIMER)
    order = ["srtest-b.service", "srtest-t.timer", "srtest-a.service"]
    args = {
        "units": [{"name": unit, "enabled": True, "state": "started"} for unit in order],
        "query": ["dbus.service", "srtest-not-installed.service", "srtest-a.service"],
    }
    before = host.state(*order)
    assert before == dict.fromkeys(order, ("disabled", "inactive"))

    def unchanged():
        assert host.state(*order) == before, "check mode changed a unit"

    _first_check, real = four(args, unchanged)
    assert real["actions"] == [
        "enable srtest-b.service",
        "start srtest-b.service",
        "enable srtest-t.timer",
        "start srtest-t.timer",
        "enable srtest-a.service",
        "start srtest-a.service",
    ]
    assert host.state(*order) == dict.fromkeys(order, ("enabled", "active"))
    # one systemctl call per action, in list order: b went active before the timer, the timer before a
    entered = [int(host.prop(unit, "ActiveEnterTimestampMonotonic")) for unit in order]
    assert entered == sorted(entered) and len(set(entered)) == 3, entered
    # the state as read before the changes, for every unit and query name
    assert real["units"]["srtest-b.service"] == {
        "load": "loaded",
        "active": "inactive",
        "sub": "dead",
        "unit_file": "disabled",
        "need_reload": False,
    }
    assert sorted(real["units"]) == sorted(order + ["dbus.service", "srtest-not-installed.service"])
    assert real["units"]["dbus.service"]["active"] == "active"
    assert real["units"]["srtest-not-installed.service"]["load"] == "not-found"  # no such unit in the image
    assert real["diff"][0] == {
        "before_header": "srtest-b.service",
        "after_header": "srtest-b.service",
        "before": "enabled: disabled\nactive: inactive\n",
        "after": "enabled: enabled\nactive: active\n",
    }
    assert len(real["diff"]) == 3
    again = run(args)
    assert again["units"]["srtest-a.service"]["unit_file"] == "enabled"


def test_stop_and_disable_four_times(host):
    host.write_unit("srtest-c.service", DAEMON.format(description="srtest c"))
    host.write_unit("srtest-d.service", ONESHOT)
    host.sh("systemctl enable --quiet --now srtest-c.service srtest-d.service")
    units = ["srtest-c.service", "srtest-d.service"]
    assert host.state(*units) == dict.fromkeys(units, ("enabled", "active"))
    args = {"units": [{"name": unit, "enabled": False, "state": "stopped"} for unit in units]}

    def unchanged():
        assert host.state(*units) == dict.fromkeys(units, ("enabled", "active")), "check mode changed a unit"

    first_check, real = four(args, unchanged)
    assert real["actions"] == [
        "disable srtest-c.service",
        "stop srtest-c.service",
        "disable srtest-d.service",
        "stop srtest-d.service",
    ]
    assert first_check["diff"][0]["after"] == "enabled: disabled\nactive: inactive\n"
    assert host.state(*units) == dict.fromkeys(units, ("disabled", "inactive"))


def test_missing_units(host):
    host.write_unit("srtest-e.service", ONESHOT)
    host.sh("systemctl mask --quiet srtest-m.service")
    present = {"name": "srtest-e.service", "enabled": True, "state": "started"}
    absent = [{"name": "srtest-x.service", "state": "stopped"}, {"name": "srtest-y.service", "enabled": True}]

    # missing: fail (the default) fails before the first change, naming every unit it cannot act on
    failed = run({"units": [present, {"name": "srtest-m.service", "enabled": True}, *absent]}, fail=True)
    assert failed["msg"] == (
        "nothing was changed: units[1] srtest-m.service: is masked (UnitFileState=masked): unmask it before "
        "enabling it; not found (LoadState=not-found): srtest-x.service, srtest-y.service; give missing: ignore "
        "to units that may not be installed"
    )
    assert (failed["changed"], failed["actions"]) == (False, [])
    assert host.state("srtest-e.service") == {"srtest-e.service": ("disabled", "inactive")}

    # check mode: what a real run would do once the play has written the unit files
    checked = run({"units": [present, *absent]}, check=True)
    assert checked["actions"] == ["enable srtest-e.service", "start srtest-e.service", "enable srtest-y.service"]
    assert checked["units"]["srtest-y.service"]["load"] == "not-found"
    assert host.state("srtest-e.service") == {"srtest-e.service": ("disabled", "inactive")}

    # missing: ignore, as for the distribution's dnsmasq.service: no change and no error
    ignored = [dict(entry, missing="ignore") for entry in absent]
    result = run({"units": [*ignored, present]})
    assert (result["changed"], result["actions"]) == (True, ["enable srtest-e.service", "start srtest-e.service"])
    assert [d["after_header"] for d in result["diff"]] == ["srtest-e.service"]
    result = run({"units": ignored})
    assert (result["changed"], result["actions"]) == (False, [])


def test_restarted_and_reloaded(host):
    host.write_unit("srtest-r.service", DAEMON.format(description="srtest r"))
    host.sh("systemctl start srtest-r.service")
    pid = host.prop("srtest-r.service", "MainPID")
    checked = run({"units": [{"name": "srtest-r.service", "state": "restarted"}]}, check=True)
    assert (checked["changed"], checked["actions"]) == (True, ["restart srtest-r.service"])
    assert host.prop("srtest-r.service", "MainPID") == pid

    for run_number in (1, 2):  # a change every time
        result = run({"units": [{"name": "srtest-r.service", "state": "restarted"}]})
        assert (result["changed"], result["actions"]) == (True, ["restart srtest-r.service"]), run_number
        old_pid, pid = pid, host.prop("srtest-r.service", "MainPID")
        assert pid not in ("0", old_pid) and host.prop("srtest-r.service", "ActiveState") == "active"
    assert result["diff"][0]["after"] == "enabled: disabled\nactive: active (restarted)\n"

    result = run({"units": [{"name": "srtest-r.service", "state": "reloaded"}]})
    assert (result["changed"], result["actions"]) == (True, ["reload srtest-r.service"])
    assert host.prop("srtest-r.service", "MainPID") == pid
    assert host.sh("cat /run/srtest-reloads") == "reloaded\n"


def test_a_changed_unit_file_is_loaded_first(host):
    host.write_unit("srtest-n.service", DAEMON.format(description="first"))
    host.sh("systemctl start srtest-n.service")
    host.write_unit("srtest-n.service", DAEMON.format(description="second"))
    assert host.prop("srtest-n.service", "NeedDaemonReload") == "yes"
    args = {"units": [{"name": "srtest-n.service", "state": "started"}]}

    checked = run(args, check=True)
    assert (checked["changed"], checked["actions"]) == (True, ["daemon-reload"])
    assert host.prop("srtest-n.service", "NeedDaemonReload") == "yes", "check mode reloaded"

    result = run(args)
    assert (result["changed"], result["actions"]) == (True, ["daemon-reload"])
    assert result["units"]["srtest-n.service"]["need_reload"] is True
    assert result["diff"] == [{"prepared": "systemctl daemon-reload (NeedDaemonReload=yes: srtest-n.service)\n"}]
    assert host.prop("srtest-n.service", "NeedDaemonReload") == "no"
    assert host.prop("srtest-n.service", "Description") == "second"

    again = run(args)
    assert (again["changed"], again["actions"]) == (False, [])
    asked = run(dict(args, daemon_reload=True))
    assert (asked["changed"], asked["actions"]) == (True, ["daemon-reload"])
    alone = run({"daemon_reload": True})
    assert (alone["changed"], alone["actions"], alone["units"]) == (True, ["daemon-reload"], {})
    nothing = run({})
    assert (nothing["changed"], nothing["actions"], nothing["units"]) == (False, [], {})


def test_a_failing_action_names_the_unit_and_keeps_what_was_done(host):
    host.write_unit("srtest-f.service", FAILING)
    host.write_unit("srtest-g.service", ONESHOT)
    host.write_unit("srtest-h.service", ONESHOT)
    host.sh("systemctl enable --quiet srtest-h.service")
    order = ["srtest-g.service", "srtest-f.service", "srtest-h.service"]
    result = run({"units": [{"name": unit, "state": "started"} for unit in order]}, fail=True)
    assert result["msg"].startswith("srtest-f.service: systemctl start failed (rc 1): Job for srtest-f.service failed")
    assert result["msg"].endswith("(done before: start srtest-g.service)")
    assert (result["changed"], result["actions"]) == (True, ["start srtest-g.service"])
    assert host.state(*order) == {
        "srtest-g.service": ("disabled", "active"),
        "srtest-f.service": ("static", "failed"),
        "srtest-h.service": ("enabled", "inactive"),
    }


def test_as_a_play_task(host):
    host.write_unit("srtest-p.service", ONESHOT)
    args = {"units": [{"name": "srtest-p.service", "enabled": True, "state": "started"}], "query": ["dbus.service"]}
    result = run_task(args)
    assert (result["changed"], result["actions"]) == (True, ["enable srtest-p.service", "start srtest-p.service"])
    assert result["units"]["dbus.service"]["active"] == "active"
    assert host.state("srtest-p.service") == {"srtest-p.service": ("enabled", "active")}
    again = run_task(args, check=True)
    assert (again["changed"], again["actions"]) == (False, [])
    failed = run_task({"units": [{"name": "srtest-none.service", "state": "started"}]}, fail=True)
    assert failed["msg"].startswith("nothing was changed: not found (LoadState=not-found): srtest-none.service")
