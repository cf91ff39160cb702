"""_releases: what differs between the supported Debian releases, checked on this machine.

The same entries are measured on the lab's Debian 13 and 12 hosts by the client scenarios
(test_the_release_facts_hold_on_this_host); here, on the machine the unit tests run on, where it is
one of the supported releases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _releases


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def codename():
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    match = re.search(r"^VERSION_CODENAME=(\S+)$", text, re.M)
    return match.group(1) if match else None


HERE = _releases.RELEASES.get(codename())
# a set with everything NFT_JSON_DROPS names, as JSON input
NFT_SET_WITH_ALL = {
    "nftables": [
        {"add": {"table": {"family": "inet", "name": "srrelease"}}},
        {
            "add": {
                "set": {
                    "family": "inet",
                    "table": "srrelease",
                    "name": "s",
                    "type": "ipv4_addr",
                    "flags": ["interval"],
                    "auto-merge": True,
                    "comment": "kept",
                }
            }
        },
    ]
}
needs_release = pytest.mark.skipif(HERE is None, reason="not one of the supported releases")


def test_every_release_names_the_same_facts():
    keys = {frozenset(r) for r in _releases.RELEASES.values()}
    assert len(keys) == 1 and {"debian", "nftables", "dnsmasq", "pyroute2", "systemd"} <= next(iter(keys))
    # the oldest release's versions are what the code must work with
    oldest = min(_releases.RELEASES.values(), key=lambda r: r["debian"])
    assert _releases.PYROUTE2_MIN_VERSION <= tuple(int(p) for p in oldest["pyroute2"].split("."))


def test_dnsmasq_test_argv_checks_a_servers_file_as_a_conf_file_too():
    assert _releases.dnsmasq_test_argv("dnsmasq", "/x.conf") == ["dnsmasq", "--test", "--conf-file=/x.conf"]
    assert _releases.dnsmasq_test_argv("dnsmasq", "/x.conf", servers_file=True) == [
        "dnsmasq",
        "--test",
        "--conf-file=/x.conf",
        "--servers-file=/x.conf",
    ]


def test_nft_json_drops_names_the_set_options_json_loses():
    assert _releases.nft_json_drops({"auto_merge": True, "comment": None})
    assert _releases.nft_json_drops({"auto_merge": False, "comment": ""})
    assert not _releases.nft_json_drops({"auto_merge": False, "comment": None})


@needs_release
@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="needs dnsmasq")
def test_dnsmasq_test_does_not_read_a_servers_file_here(tmp_path):
    bad = tmp_path / "servers.conf"
    bad.write_text("server=/x.example/not-an-address\n")
    assert HERE["dnsmasq"] in run(["dnsmasq", "--version"]).stdout
    as_servers = run(["dnsmasq", "--test", "--conf-file=/dev/null", "--servers-file=%s" % bad])
    assert (as_servers.returncode != 0) == _releases.DNSMASQ_TEST_READS_SERVERS_FILE, as_servers.stderr
    argv = _releases.dnsmasq_test_argv("dnsmasq", str(bad), servers_file=True)
    assert run(argv).returncode != 0


@needs_release
@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_nft_json_input_keeps_or_drops_what_is_recorded_here():
    assert HERE["nftables"] in run(["nft", "--version"]).stdout
    script = "nft -j -f - && nft list set inet srrelease s"
    # in a network namespace of its own, gone with the command
    proc = run(["unshare", "--net", "sh", "-c", script], input=json.dumps(NFT_SET_WITH_ALL))
    assert proc.returncode == 0, proc.stderr
    kept = {"comment": 'comment "kept"' in proc.stdout, "auto-merge": "auto-merge" in proc.stdout}
    assert kept == {key: key in HERE["nft_json_keeps"] for key in _releases.NFT_JSON_DROPS}, proc.stdout
