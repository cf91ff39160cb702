"""_units: which of a role's units restart or reload after the run's file tasks changed files."""

from __future__ import annotations

from ansible_collections.splitroute.vpn.plugins.module_utils import _names
from ansible_collections.splitroute.vpn.plugins.module_utils._units import changed_paths, unit_states, units_with


def test_changed_paths_joins_the_trees_names_and_leaves_directories_and_unchanged_results_out():
    tree = {
        "changed": True,
        "path": "/etc/x/",
        "created": ["./", "a/", "a/b.conf"],
        "updated": ["c.nft"],
        "removed": [],
    }
    unchanged = {"changed": False, "path": "/etc/y", "created": [], "updated": [], "removed": []}
    one_file = {"changed": True, "path": "/etc/z/servers.conf"}
    skipped = {"changed": False, "skipped": True}
    removed = {"changed": True, "path": "/etc/w", "created": [], "updated": [], "removed": ["old.conf", "d/"]}
    got = changed_paths([tree, unchanged, one_file, skipped, removed, None, "text"])
    assert got == ["/etc/w/old.conf", "/etc/x/a/b.conf", "/etc/x/c.nft", "/etc/z/servers.conf"]


def test_unit_states_restart_beats_reload_and_the_rest_only_start_in_the_given_order():
    triggers = {
        "front.service": {"restart": ["/f.conf"], "reload": ["/servers.conf"]},
        "back@a.service": {"restart": ["/a.conf"]},
    }
    start = ["table.service", "back@a.service", "front.service"]
    assert unit_states(start, triggers, []) == [
        {"name": "table.service", "enabled": True, "state": "started"},
        {"name": "back@a.service", "enabled": True, "state": "started"},
        {"name": "front.service", "enabled": True, "state": "started"},
    ]
    got = unit_states(start, triggers, ["/servers.conf", "/a.conf"])
    assert [u["state"] for u in got] == ["started", "restarted", "reloaded"]
    got = unit_states(start, triggers, ["/servers.conf", "/f.conf"])
    assert [u["state"] for u in got] == ["started", "started", "restarted"]


def test_units_with_gives_every_name_the_same_settings_and_leaves_none_out():
    assert units_with(["a.service", "b.timer"], enabled=False, state="stopped", missing="ignore") == [
        {"name": "a.service", "enabled": False, "state": "stopped", "missing": "ignore"},
        {"name": "b.timer", "enabled": False, "state": "stopped", "missing": "ignore"},
    ]
    assert units_with(["a.service"], state="restarted") == [{"name": "a.service", "state": "restarted"}]


def test_the_client_triggers_name_the_files_its_templates_and_trees_write():
    triggers = _names.client_unit_triggers(["wg0", "wg1"], ["wg0"])
    # a changed peer reloads the tunnel (wg syncconf), a changed [Interface] (its drop-in repeats it) restarts it
    assert triggers[_names.wg_unit("wg1")] == {
        "restart": ["/etc/systemd/system/wg-quick@wg1.service.d/splitroute.conf"],
        "reload": ["/etc/wireguard/wg1.conf"],
    }
    # a new servers-file is the host program's to apply (splitroute apply: SIGHUP), not a trigger
    assert _names.CLIENT_FRONT_SERVERS not in str(triggers)
    assert _names.CLIENT_FRONT_CONF in triggers[_names.FRONT_UNIT]["restart"]
    assert set(_names.back_files("wg0")) <= set(triggers[_names.back_unit("wg0")]["restart"])
    assert _names.back_unit("wg1") not in triggers


def test_tree_file_names_are_relative_to_their_root_and_a_path_outside_is_refused():
    assert _names.tree_file("/etc/systemd", _names.wg_dropin("wg0"), "t.j2", tunnel="wg0") == {
        "name": "system/wg-quick@wg0.service.d/splitroute.conf",
        "template": "t.j2",
        "tunnel": "wg0",
    }
    try:
        _names.tree_file("/etc/systemd", "/etc/systemdx/a.conf", "t.j2")
    except ValueError as exc:
        assert "not under" in str(exc)
    else:
        raise AssertionError("a path outside its root was taken")
