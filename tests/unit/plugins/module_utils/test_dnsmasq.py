"""The pure part of module_utils._dnsmasq: normalisation, validation, rendering, parsing.

The compiled files are also given to the real dnsmasq (``dnsmasq --test``), as the module does.
"""

from __future__ import annotations

import random
import re
import subprocess

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils import _dnsmasq as dm

SETS = [
    {"version": 4, "family": "inet", "table": "splitroute", "name": "wg0_v4"},
    {"version": 6, "family": "inet", "table": "splitroute", "name": "wg0_v6"},
]
SAFE_LINE = re.compile(r"[ -~]*\Z")  # printable ASCII only


def group(name="wg0", domains=(), sets=None, servers=(), back_server=None):
    return {
        "name": name,
        "domains": list(domains),
        "sets": SETS if sets is None else sets,
        "servers": list(servers),
        "back_server": back_server,
    }


def dnsmasq_test(tmp_path, text, servers_file=False):
    conf = tmp_path / "check.conf"
    conf.write_text(text)
    cmd = ["dnsmasq", "--test", "--conf-file=%s" % conf]
    if servers_file:
        cmd.append("--servers-file=%s" % conf)
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


# ---- domains ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        (".example.com", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.EXAMPLE.", "xn--bcher-kva.example"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("例え。テスト", "xn--r8jz45g.xn--zckzah"),  # ideographic full stop separates labels in IDNA
        ("\uff41\uff42\uff43.example", "abc.example"),  # fullwidth letters map to ASCII (NFKC)
        ("xn--strae-oqa.de", "xn--strae-oqa.de"),  # IDNA 2008 form of straße, given explicitly
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("a-b.example", "a-b.example"),
        ("localhost", "localhost"),
        ("1password.com", "1password.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),  # 253 characters
    ],
)
def test_domain_accepted_forms(raw, want):
    assert dm.normalize_domain(raw) == want


INJECTIONS = [
    "a.com\nserver=/a.com/203.0.113.1",
    "a.com\n",
    "\na.com",
    "a.com\r",
    "a.com\r\nnftset=/#/4#inet#t#s",
    "a.com/4#inet#t#s",
    "a.com/",
    "/a.com",
    "a.com#",
    "#",
    "a,b.com",
    "a b.com",
    " a.com",
    "a.com ",
    "a\tb.com",
    "a\x00.com",
    "a\x7f.com",
    "a\x1b[31m.com",
    "a\x0bb.com",
    "a\x0cb.com",
    "a\u0085b.com",  # NEL
    "a\u2028b.com",  # line separator
    "a\u2029b.com",  # paragraph separator
    "a\u00a0b.com",  # no-break space
    "a\u3000b.com",  # ideographic space
    "a\u200bb.com",  # zero width space (IDNA would silently drop it)
    "a\u00adb.com",  # soft hyphen (IDNA would silently drop it)
    "\ufeffa.com",  # byte order mark
    "a\u202eb.com",  # right-to-left override
    "a\uff0fb.com",  # fullwidth solidus: '/' after IDNA
    "a\uff03b.com",  # fullwidth number sign: '#' after IDNA
    "a\uff0cb.com",  # fullwidth comma: ',' after IDNA
    "a\ud800b.com",  # lone surrogate
    "a:b.com",
    "a@b.com",
    "a;b.com",
    "a=b.com",
    "a\\b.com",
    "a'b.com",
    'a"b.com',
    "a$b.com",
    "a%b.com",
    "a&b.com",
    "a|b.com",
    "a(b).com",
    "a[b].com",
]


@pytest.mark.parametrize("raw", INJECTIONS)
def test_domain_injection_refused(raw):
    with pytest.raises(dm.InputError) as info:
        dm.normalize_domain(raw)
    assert "contains" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "is empty"),
        (".", "is empty"),
        ("..", "is empty"),
        ("a..b.com", "empty label"),
        ("example.com..", "empty label"),
        ("-a.com", "starts or ends with '-'"),
        ("a-.com", "starts or ends with '-'"),
        ("a" * 64 + ".com", "longer than 63"),
        (".".join(["a" * 63] * 4), "at most 253"),
        ("1.2.3.4", "looks like an IP address"),
        ("10.0.0.1.", "looks like an IP address"),
        ("xn--abc.com", "invalid punycode"),
        ("xn--.com", "starts or ends with '-'"),
        ("xn--example.com", "invalid punycode"),
        ("straße.de", "IDNA 2003 and IDNA 2008"),
        ("ς.example", "IDNA 2003 and IDNA 2008"),
        ("ä" * 70 + ".com", "not a valid internationalised domain name"),
        (None, "is not a string"),
        (5, "is not a string"),
    ],
)
def test_domain_invalid(raw, fragment):
    with pytest.raises(dm.InputError, match=re.escape(fragment)):
        dm.normalize_domain(raw)


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("*.example.com", "write 'example.com' instead"),
        ("*example.com", "write 'example.com' instead"),
        ("*.*.example.com", "write 'example.com' instead"),
        ("www.*.example.com", "wildcards are not supported"),
        ("*", "wildcards are not supported"),
    ],
)
def test_wildcards_refused_with_a_hint(raw, hint):
    with pytest.raises(dm.InputError, match=re.escape(hint)) as info:
        dm.normalize_domain(raw)
    assert "already matches example.com and every subdomain" in str(info.value)


def test_domain_fuzz_output_is_always_safe():
    """Whatever goes in, what comes out is [a-z0-9_.-] or an InputError."""
    rng = random.Random(20240601)
    alphabet = "abcXYZ019-_.*/#, \t\n\r\x00\x7f\u00e4\u00fc\u00df\u0430\u3002\uff0e\uff0f\uff03\u200b\u2028\U0001f600"
    accepted = 0
    for _attempt in range(20000):
        raw = "".join(rng.choice(alphabet) for _attempt in range(rng.randint(0, 12)))
        try:
            out = dm.normalize_domain(raw)
        except dm.InputError:
            continue
        accepted += 1
        assert re.fullmatch(r"[a-z0-9_.-]{1,253}", out), (raw, out)
        assert dm.normalize_domain(out) == out  # normal form is stable
    assert accepted > 100


# ---- servers, sets, group names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("10.8.0.1", "10.8.0.1"),
        ("10.8.0.1#53", "10.8.0.1"),
        ("10.8.0.1#5353", "10.8.0.1#5353"),
        ("127.0.0.53#5301", "127.0.0.53#5301"),
        ("FD00::0001", "fd00::1"),
        ("fd00::1#5353", "fd00::1#5353"),
        ("::ffff:198.51.100.1", "::ffff:198.51.100.1"),
    ],
)
def test_server_accepted(raw, want):
    assert dm.normalize_server(raw) == want


@pytest.mark.parametrize(
    "raw",
    [
        "10.8.0.1\n",
        "10.8.0.1\nnftset=/#/4#inet#t#s",
        "10.8.0.1/x",
        "10.8.0.1 ",
        "10.8.0.1,10.8.0.2",
        "10.8.0.1#53#54",
        "10.8.0.1#",
        "10.8.0.1#0",
        "10.8.0.1#65536",
        "10.8.0.1#5x",
        "10.8.0.1@eth0",
        "fe80::1%eth0",
        "dns.example",
        "256.1.1.1",
        "010.8.0.1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "",
        None,
    ],
)
def test_server_refused(raw):
    with pytest.raises(dm.InputError):
        dm.normalize_server(raw)


def test_set_spec():
    assert dm.set_spec({"version": 4, "table": "t", "name": "s"}) == "4#inet#t#s"
    assert dm.set_spec({"version": 6, "family": "ip6", "table": "t.x", "name": "s-1_a"}) == "6#ip6#t.x#s-1_a"


@pytest.mark.parametrize(
    "spec",
    [
        {"version": 5, "table": "t", "name": "s"},
        {"version": True, "table": "t", "name": "s"},
        {"version": "4", "table": "t", "name": "s"},
        {"version": 4, "family": "bridge", "table": "t", "name": "s"},
        {"version": 4, "family": "inet\n", "table": "t", "name": "s"},
        {"version": 4, "table": "t\n", "name": "s"},  # the shared validator's `$` would accept this one
        {"version": 4, "table": "t", "name": "s\n"},
        {"version": 4, "table": "t/x", "name": "s"},
        {"version": 4, "table": "t", "name": "s#x"},
        {"version": 4, "table": "t", "name": "s,6#inet#t#x"},
        {"version": 4, "table": "t x", "name": "s"},
        {"version": 4, "table": "1t", "name": "s"},
        {"version": 4, "table": "", "name": "s"},
        {"version": 4, "table": "t", "name": "s" * 256},
        {"version": 4, "table": "t"},
        "4#inet#t#s",
    ],
)
def test_set_spec_refused(spec):
    with pytest.raises(dm.InputError):
        dm.set_spec(spec)


@pytest.mark.parametrize("name", ["", "wg0\nnftset=/#/4#inet#t#s", "wg 0", "wg0#", "w" * 65, None, "wg/0"])
def test_group_name_refused(name):
    with pytest.raises(dm.InputError, match="must be 1-64 characters"):
        dm.compile_config([group(name=name, domains=["a.com"])])


# ---- compiling ---------------------------------------------------------------------------------


def test_flat_one_line_per_domain_with_all_sets():
    compiled = dm.compile_config(
        [
            group(domains=["b.example", "A.example", "a.example.", "bücher.example", "xn--bcher-kva.example"]),
            group(name="ovpn0", domains=["c.example"], sets=SETS[:1], servers=["10.9.0.1", "10.9.0.1#53", "fd00::9"]),
        ]
    )
    assert compiled.content == (
        dm.HEADER % "flat"
        + "\n"
        + "# group ovpn0 (1 domain)\n"
        + "nftset=/c.example/4#inet#splitroute#wg0_v4\n"
        + "server=/c.example/10.9.0.1\n"
        + "server=/c.example/fd00::9\n"
        + "# group wg0 (3 domains)\n"
        + "nftset=/a.example/4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6\n"
        + "nftset=/b.example/4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6\n"
        + "nftset=/xn--bcher-kva.example/4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6\n"
    )
    assert compiled.domains == {"a.example", "b.example", "xn--bcher-kva.example", "c.example"}


def test_flat_servers_only_group():
    compiled = dm.compile_config([group(domains=["a.example"], sets=[], servers=["10.8.0.1"])])
    assert compiled.content.splitlines()[2:] == ["server=/a.example/10.8.0.1"]


def test_output_is_deterministic():
    domains = ["d%04d.example" % i for i in range(500)]
    groups = [group(domains=domains), group(name="b", domains=["other.example"], servers=["10.0.0.1"])]
    first = dm.compile_config(groups).content
    rng = random.Random(1)
    for _attempt in range(5):
        shuffled = domains[:]
        rng.shuffle(shuffled)
        again = dm.compile_config([groups[1], group(domains=shuffled + [d.upper() for d in shuffled[:50]])])
        assert again.content == first


def test_domain_in_two_groups_is_an_error():
    with pytest.raises(dm.InputError, match=r"'a.example' is in groups wg0 and ovpn0"):
        dm.compile_config([group(domains=["a.example"]), group(name="ovpn0", domains=["A.example."])])


def test_idna_and_punycode_spellings_in_two_groups_are_the_same_domain():
    with pytest.raises(dm.InputError, match=r"xn--bcher-kva.example"):
        dm.compile_config([group(domains=["bücher.example"]), group(name="b", domains=["xn--bcher-kva.example"])])


def test_subdomain_in_another_group_is_allowed():
    compiled = dm.compile_config([group(domains=["example.com"]), group(name="b", domains=["www.example.com"])])
    assert compiled.domains == {"example.com", "www.example.com"}


def test_group_defined_twice():
    with pytest.raises(dm.InputError, match="group wg0 is defined twice"):
        dm.compile_config([group(domains=["a.example"]), group(domains=["b.example"])])


def test_flat_group_needs_sets_or_servers():
    with pytest.raises(dm.InputError, match="neither sets nor servers"):
        dm.compile_config([group(domains=["a.example"], sets=[])])


def test_errors_are_collected_and_capped():
    bad = ["bad domain %d" % i for i in range(50)]
    with pytest.raises(dm.InputError) as info:
        dm.compile_config([group(domains=bad)])
    assert str(info.value).count("contains a space") == dm.MAX_ERRORS
    assert "(and 30 more)" in str(info.value)


def test_front_layout_is_a_servers_file():
    compiled = dm.compile_config(
        [
            group(domains=["b.example", "a.example"], back_server="127.0.0.53#5301"),
            group(name="ovpn0", domains=["c.example"], back_server="127.0.0.54#5302"),
        ],
        dm.FRONT,
    )
    assert compiled.content.splitlines()[1:] == [
        "# group ovpn0 (1 domain)",
        "server=/c.example/127.0.0.54#5302",
        "# group wg0 (2 domains)",
        "server=/a.example/127.0.0.53#5301",
        "server=/b.example/127.0.0.53#5301",
    ]
    assert dm.servers_file_problems(compiled.content) == []


def test_front_layout_needs_back_server():
    with pytest.raises(dm.InputError, match="needs back_server"):
        dm.compile_config([group(domains=["a.example"])], dm.FRONT)


def test_back_layout_catch_all():
    compiled = dm.compile_config([group(domains=["a.example"], servers=["10.8.0.1", "fd00::1#5353"])], dm.BACK)
    assert compiled.content.splitlines()[2:] == [
        "nftset=/#/4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6",
        "server=10.8.0.1",
        "server=fd00::1#5353",
    ]
    assert compiled.domains == set()


@pytest.mark.parametrize("count", [0, 2])
def test_back_layout_takes_one_group(count):
    groups = [group(name="g%d" % i) for i in range(count)]
    with pytest.raises(dm.InputError, match="exactly one group"):
        dm.compile_config(groups, dm.BACK)


def test_back_layout_needs_sets():
    with pytest.raises(dm.InputError, match="needs sets"):
        dm.compile_config([group(sets=[], servers=["10.8.0.1"])], dm.BACK)


def sets_for_line(length):
    """Sets whose nftset= line for a.example is LENGTH characters long (nftables names are at most 255)."""
    sets = []
    current = len("nftset=/a.example/") - 1  # the first spec has no comma before it
    for filler in "abdefgh":
        remaining = length - current - 1
        big = {"version": 4, "table": "t" * 200, "name": filler * 250}
        if remaining <= len(dm.set_spec(big)):
            sets.append({"version": 6, "table": "t", "name": "c" * (remaining - len("6#inet#t#"))})
            return sets
        sets.append(big)
        current += 1 + len(dm.set_spec(big))
    raise AssertionError("length too large for this helper")


@pytest.mark.parametrize("length", [dm.MAX_LINE - 1, dm.MAX_LINE, dm.MAX_LINE + 1, 1500])
def test_line_limit(tmp_path, length):
    groups = [group(domains=["a.example"], sets=sets_for_line(length))]
    if length > dm.MAX_LINE:
        with pytest.raises(dm.InputError, match="would be %d characters, dnsmasq reads at most 1023" % length):
            dm.compile_config(groups)
        return
    compiled = dm.compile_config(groups)
    assert max(len(line) for line in compiled.content.splitlines()) == length
    proc = dnsmasq_test(tmp_path, compiled.content)
    assert proc.returncode == 0, proc.stderr


def test_parse_domains_round_trip():
    groups = [
        group(domains=["b.example", "bücher.example"], servers=["10.8.0.1"], back_server="127.0.0.53#5301"),
        group(name="o", domains=["c.example"], sets=[], servers=["10.9.0.1"], back_server="127.0.0.54"),
    ]
    for layout in (dm.FLAT, dm.FRONT):
        compiled = dm.compile_config(groups, layout)
        assert dm.parse_domains(compiled.content) == compiled.domains
    assert dm.parse_domains(dm.compile_config(groups[:1], dm.BACK).content) == set()
    assert dm.parse_domains("# nftset=/x.example/\nserver=/a.example/b.example/10.0.0.1\nfoo\n") == {
        "a.example",
        "b.example",
    }


def test_servers_file_problems():
    assert dm.servers_file_problems("# c\nserver=/a/1.1.1.1\n\nnftset=/a/4#inet#t#s\nserver=1.1.1.1\n") == [4, 5]


# ---- the real dnsmasq accepts what is compiled --------------------------------------------------


MIXED = [
    group(
        domains=["Example.com", "bücher.example", "例え.テスト", "_dmarc.example.org", "x.example."],
        servers=["10.8.0.1#5353", "fd00::1"],
        back_server="127.0.0.53#5301",
    ),
    group(
        name="ovpn0",
        domains=["www.example.com"],
        sets=[{"version": 4, "family": "ip", "table": "t4", "name": "s4"}],
        back_server="::1#5302",
    ),
]


@pytest.mark.parametrize("layout", dm.LAYOUTS)
def test_dnsmasq_accepts_every_layout(tmp_path, layout):
    groups = MIXED[:1] if layout == dm.BACK else MIXED
    compiled = dm.compile_config(groups, layout)
    assert all(SAFE_LINE.match(line) for line in compiled.content.splitlines())
    proc = dnsmasq_test(tmp_path, compiled.content, servers_file=layout == dm.FRONT)
    assert proc.returncode == 0, proc.stderr


def test_dnsmasq_test_reads_conf_file_but_not_servers_file(tmp_path):
    """Why the module gives a servers-file to --test as a conf-file too (dnsmasq 2.90)."""
    bad = tmp_path / "bad"
    bad.write_text("server=/a.example/10.0.0.1\nnot-an-option\n")
    only_servers_file = subprocess.run(
        ["dnsmasq", "--test", "--conf-file=/dev/null", "--servers-file=%s" % bad], capture_output=True, check=False
    )
    as_conf_file = subprocess.run(["dnsmasq", "--test", "--conf-file=%s" % bad], capture_output=True, check=False)
    assert only_servers_file.returncode == 0
    assert as_conf_file.returncode != 0


def test_ten_thousand_domains(tmp_path):
    domains = ["host%05d.zone%02d.example" % (i, i % 37) for i in range(10000)]
    compiled = dm.compile_config(
        [group(domains=domains + [d.upper() + "." for d in domains[:1000]], servers=["10.8.0.1"])]
    )
    assert len(compiled.domains) == 10000
    lines = compiled.content.splitlines()
    assert len(lines) == 2 + 2 * 10000
    assert dm.parse_domains(compiled.content) == set(domains)
    assert dnsmasq_test(tmp_path, compiled.content).returncode == 0


# ---- file arguments, checked before the file is written --------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"mode": "0644"}, None),
        ({"mode": 0o640}, None),
        ({"mode": "u=rw,g=r,o="}, None),
        ({"mode": "a+X"}, None),
        ({"owner": "root", "group": "root"}, None),
        ({"owner": "0", "group": "0"}, None),
        ({"mode": "999"}, "mode '999' must be in octal (0644) or symbolic (u=rw,g=r,o=r) form"),
        ({"mode": "0o7777777"}, "mode '0o7777777' is invalid: only permission bits"),
        ({"mode": -1}, "mode -1 is invalid: only permission bits"),
        ({"mode": True}, "mode must be an octal string such as '0644' or a symbolic mode, not bool"),
        ({"owner": "srt-nobody-here"}, "owner 'srt-nobody-here': no such user on this host"),
        ({"owner": "-5"}, "owner '-5' is not a user id"),
        ({"group": "srt-nogroup-here"}, "group 'srt-nogroup-here': no such group on this host"),
    ],
)
def test_file_args_problems(tmp_path, args, problem):
    problems = dm.file_args_problems(args, str(tmp_path), AnsibleModule._symbolic_mode_to_octal)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]
