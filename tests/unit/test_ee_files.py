"""The execution environment's files and the collection artifact: what ansible-builder and
ansible-galaxy read, checked for what can break without anybody noticing until a build.

- execution-environment.yml is ansible-builder 3's format and every file it names exists;
- the collections galaxy.yml depends on are in the EE, at versions galaxy.yml accepts;
- every library a controller-side plugin imports (beyond the standard library and
  ansible-core) is in requirements.txt, the EE's Python requirements;
- requirements.txt and bindep.txt are well-formed; bindep.txt's profiles `client` and
  `gateway` are the roles' apt packages, its profile `test` is what `make deps` installs on
  this machine (scripts/host-packages.txt), and its default profile (the EE's) holds none of
  the roles' packages;
- the built collection ships inventories/example, requirements.txt and bindep.txt, and
  leaves out the lab, molecule and local caches.
"""

from __future__ import annotations

import ast
import glob
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent.parent
EE_FILE = ROOT / "execution-environment.yml"
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())

# Plugin types that run on the controller (modules and their module_utils run on the hosts,
# except module_utils that a controller-side plugin imports: those are followed).
CONTROLLER_PLUGIN_DIRS = (
    "action", "become", "cache", "callback", "cliconf", "connection", "filter", "httpapi",
    "inventory", "lookup", "netconf", "shell", "strategy", "terminal", "test", "vars",
)  # fmt: skip
COLLECTION_PREFIX = "ansible_collections.%s.%s." % (GALAXY["namespace"], GALAXY["name"])
# Installed with ansible-core itself (its own requirements).
ANSIBLE_CORE_PROVIDES = {"jinja2", "yaml", "markupsafe", "packaging", "resolvelib", "cryptography"}
# Import names whose distribution is named differently.
DISTRIBUTION_OF = {"yaml": "pyyaml", "dateutil": "python-dateutil", "OpenSSL": "pyopenssl", "PIL": "pillow"}


def load_ee():
    return yaml.safe_load(EE_FILE.read_text())


def dependency_file(key):
    value = load_ee()["dependencies"][key]
    assert isinstance(value, str), "dependencies.%s should name a file (the repository keeps one)" % key
    return EE_FILE.parent / value


# --- execution-environment.yml ---


def test_ee_is_ansible_builder_3_with_core_and_runner():
    ee = load_ee()
    assert ee["version"] == 3
    assert set(ee) <= {"version", "images", "dependencies", "additional_build_files", "additional_build_steps",
                       "build_arg_defaults", "options"}  # fmt: skip
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    core = Requirement(deps["ansible_core"]["package_pip"])
    runner = Requirement(deps["ansible_runner"]["package_pip"])
    assert core.name == "ansible-core"
    assert runner.name == "ansible-runner"
    # The EE runs the ansible-core the collection supports (meta/runtime.yml's requires_ansible).
    requires = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    pinned = [s.version for s in core.specifier if s.operator == "=="]
    for version in pinned:
        assert Requirement("ansible-core" + requires).specifier.contains(version), (
            "ansible-core %s is outside meta/runtime.yml's requires_ansible %s" % (version, requires)
        )


@pytest.mark.parametrize("key", ["python", "system", "galaxy"])
def test_ee_dependency_files_exist(key):
    assert dependency_file(key).is_file()


def test_ee_installs_the_collection_artifact_it_copies():
    """additional_build_files brings the artifact `ansible-galaxy collection build` names
    NAMESPACE-NAME-VERSION.tar.gz into _build/DEST; a galaxy-stage step installs it from there."""
    ee = load_ee()
    artifact = "%s-%s-" % (GALAXY["namespace"], GALAXY["name"])
    copies = [f for f in ee["additional_build_files"] if Path(f["src"]).name.startswith(artifact)]
    assert len(copies) == 1, "additional_build_files should copy the collection's tarball"
    src, dest = copies[0]["src"], copies[0]["dest"]
    assert src.endswith(".tar.gz") and not Path(src).is_absolute()
    assert not Path(dest).is_absolute() and ".." not in Path(dest).parts
    steps = ee["additional_build_steps"]["append_galaxy"]
    steps = steps if isinstance(steps, list) else [steps]
    install = [s for s in steps if "ansible-galaxy collection install" in " ".join(s.split())]
    assert install, "append_galaxy should install the collection"
    words = " ".join(install[0].split()).split()
    # the galaxy stage works in /build, a copy of _build/
    assert "%s/%s" % (dest.rstrip("/"), Path(src).name) in words
    assert "--collections-path" in words
    assert words[words.index("--collections-path") + 1] == "/usr/share/ansible/collections"
    # its dependencies come from dependencies.galaxy, installed just before (no Galaxy access needed)
    assert "--no-deps" in words


def test_ee_galaxy_requirements_cover_galaxy_yml_dependencies():
    requirements = yaml.safe_load(dependency_file("galaxy").read_text())
    listed = {}
    for raw in requirements["collections"]:
        item = raw if isinstance(raw, dict) else {"name": raw}
        listed[item["name"]] = str(item.get("version", "*"))
    for name, spec in GALAXY["dependencies"].items():
        assert name in listed, "%s (galaxy.yml dependencies) is missing from the EE's collections" % name
        version = listed[name]
        if version != "*" and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version):
            assert meets_requirements(version, spec), "%s %s does not meet galaxy.yml's %s" % (name, version, spec)
    # the collection itself comes from the artifact, not from Galaxy
    assert "%s.%s" % (GALAXY["namespace"], GALAXY["name"]) not in listed


# --- requirements.txt: the controller's Python libraries ---


def requirement_lines(path):
    lines = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            lines.append(line)
    return lines


def test_requirements_txt_is_well_formed():
    for line in requirement_lines(ROOT / "requirements.txt"):
        assert not line.startswith("-"), "%r: options and nested files are not followed by ansible-builder" % line
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            pytest.fail("requirements.txt: %r is not a PEP 508 requirement (%s)" % (line, exc))


def imports_of(source, filename="<plugin>"):
    """Top-level module names a Python source imports, split into (required, optional).

    An import inside a `try:` whose handlers catch ImportError (or Exception) is optional:
    the code runs without it. Relative imports stay inside the collection and are skipped."""
    tree = ast.parse(source, filename)
    required, optional = set(), set()

    def catches_import_error(node):
        for handler in node.handlers:
            names = []
            if handler.type is None:
                return True
            for item in handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]:
                names.append(getattr(item, "id", getattr(item, "attr", "")))
            if {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"} & set(names):
                return True
        return False

    def visit(node, guarded):
        if isinstance(node, ast.Try):
            inner = guarded or catches_import_error(node)
            for child in node.body:
                visit(child, inner)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                (optional if guarded else required).add(alias.name)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            (optional if guarded else required).add(node.module)
            if node.module.startswith("ansible_collections."):  # `from ...module_utils import _name`
                (optional if guarded else required).update("%s.%s" % (node.module, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return required, optional - required


def controller_imports():
    """Third-party modules the controller-side plugins need, with the file that needs each,
    following the collection's own module_utils they import."""
    needed = {}
    queue = []
    for kind in CONTROLLER_PLUGIN_DIRS:
        queue += sorted((ROOT / "plugins" / kind).glob("*.py"))
    seen = set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        required, _optional = imports_of(path.read_text(), str(path))
        for name in sorted(required):
            top = name.split(".")[0]
            if name.startswith(COLLECTION_PREFIX):
                target = ROOT.joinpath(*name[len(COLLECTION_PREFIX) :].split("."))
                for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                    if candidate.is_file():
                        queue.append(candidate)
            elif top in ("ansible", "ansible_collections", "__future__") or top in sys.stdlib_module_names:
                continue
            else:
                needed.setdefault(top, path.relative_to(ROOT))
    return needed


def test_import_scan_finds_required_and_optional_imports():
    source = (
        "from __future__ import annotations\n"
        "import base64, qrcode.image.svg\n"
        "from jinja2 import pass_context\n"
        "from . import _local\n"
        "from ansible_collections.ns.col.plugins.module_utils import _x\n"
        "try:\n    import nftables\nexcept ImportError:\n    nftables = None\n"
        "try:\n    import segno\nexcept ValueError:\n    pass\n"
        "def f():\n    import netaddr\n"
    )
    required, optional = imports_of(source)
    assert required == {
        "__future__", "base64", "qrcode.image.svg", "jinja2", "segno", "netaddr",
        "ansible_collections.ns.col.plugins.module_utils", "ansible_collections.ns.col.plugins.module_utils._x",
    }  # fmt: skip
    assert optional == {"nftables"}


def test_controller_plugin_imports_are_in_requirements_txt():
    listed = {canonicalize_name(Requirement(line).name) for line in requirement_lines(ROOT / "requirements.txt")}
    missing = []
    for module, where in sorted(controller_imports().items()):
        if module in ANSIBLE_CORE_PROVIDES:
            continue
        if canonicalize_name(DISTRIBUTION_OF.get(module, module)) not in listed:
            missing.append("%s (imported by %s)" % (module, where))
    assert not missing, "the EE would lack: %s; add them to requirements.txt" % ", ".join(missing)


# --- bindep.txt: the controller's system packages, and the managed hosts' under profiles ---

BINDEP_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._+-]*)"
    r"(?:\s+\[(?P<selectors>[^\]]*)\])?"
    r"(?:\s+(?P<version>(?:[<>=!]=?|==)[A-Za-z0-9.:~+-]+(?:,(?:[<>=!]=?|==)[A-Za-z0-9.:~+-]+)*))?$"
)
SELECTOR = re.compile(r"^!?(?:platform:[A-Za-z0-9._-]+|[a-z][a-z0-9_-]*)$")


def bindep_entries():
    entries = []
    for number, raw in enumerate((ROOT / "bindep.txt").read_text().splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        match = BINDEP_LINE.match(line)
        assert match, "bindep.txt:%d: %r is not NAME [SELECTORS] [VERSIONS]" % (number, raw)
        selectors = (match.group("selectors") or "").split()
        for selector in selectors:
            assert SELECTOR.match(selector), "bindep.txt:%d: bad selector %r" % (number, selector)
        profiles = {s for s in selectors if not s.lstrip("!").startswith("platform:")}
        platforms = {s for s in selectors if s.lstrip("!").startswith("platform:")}
        entries.append({"name": match.group("name"), "profiles": profiles, "platforms": platforms})
    return entries


def test_bindep_entries_are_well_formed():
    entries = bindep_entries()
    assert entries
    seen = set()
    for entry in entries:
        key = (entry["name"], frozenset(entry["platforms"]))
        assert key not in seen, "bindep.txt lists %s twice for the same platforms" % entry["name"]
        seen.add(key)


def role_packages(role):
    data = yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())
    return set(data["__splitroute_%s_packages" % role])


@pytest.mark.parametrize("role", ["client", "gateway"])
def test_bindep_profile_lists_the_roles_apt_packages(role):
    listed = {e["name"] for e in bindep_entries() if role in e["profiles"] and "platform:dpkg" in e["platforms"]}
    assert listed == role_packages(role), (
        "bindep.txt's profile %s should list exactly roles/%s/vars/main.yml's packages "
        "(missing: %s, extra: %s)"
        % (role, role, sorted(role_packages(role) - listed), sorted(listed - role_packages(role)))
    )


def bindep_profile_on_debian(profile):
    """The packages `bindep PROFILE` asks for on Debian: entries with no profile or with PROFILE,
    for no platform or for platform:dpkg (bindep's rules for positive selectors)."""
    return {
        e["name"]
        for e in bindep_entries()
        if (not e["profiles"] or profile in e["profiles"]) and (not e["platforms"] or "platform:dpkg" in e["platforms"])
    }


def test_bindep_profile_test_is_what_bootstrap_installs():
    """`bindep test` lists exactly the packages scripts/bootstrap.sh installs: the first word of
    each line of scripts/host-packages.txt (tests/unit/test_host_commands.py checks that list
    against the commands the project runs)."""
    text = (ROOT / "scripts" / "host-packages.txt").read_text()
    bootstrap = {line.split()[0] for line in (raw.split("#", 1)[0].strip() for raw in text.splitlines()) if line}
    listed = bindep_profile_on_debian("test")
    assert listed == bootstrap, (
        "bindep.txt's profile test should be scripts/host-packages.txt's packages (missing: %s, extra: %s)"
        % (sorted(bootstrap - listed), sorted(listed - bootstrap))
    )


def test_bindep_default_profile_is_the_controllers_only():
    """An EE build installs the default profile (entries without a profile): no host package there."""
    host_packages = role_packages("client") | role_packages("gateway")
    default = [e for e in bindep_entries() if not e["profiles"]]
    assert default, "the EE's own packages (no profile) are missing"
    leaked = sorted(e["name"] for e in default if e["name"] in host_packages)
    assert not leaked, "managed-host packages without a profile would go into the EE: %s" % leaked
    # The EE's base image is RPM-based: its packages must apply there.
    assert any(not e["platforms"] or "platform:rpm" in e["platforms"] for e in default)


# --- the collection artifact (galaxy.yml build_ignore) ---


@pytest.fixture(scope="module")
def artifact_members(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    subprocess.run(
        [str(galaxy), "collection", "build", "--output-path", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (tarball,) = glob.glob(str(out / "*.tar.gz"))
    with tarfile.open(tarball) as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


@pytest.mark.parametrize(
    "path",
    ["requirements.txt", "bindep.txt", "inventories/example/hosts.yml", "inventories/example/group_vars/all.yml",
     "roles/client/meta/argument_specs.yml", "roles/gateway/meta/argument_specs.yml"],
)  # fmt: skip
def test_artifact_ships(artifact_members, path):
    assert path in artifact_members


@pytest.mark.parametrize(
    "prefix", ["lab", "molecule", ".venv", ".cache", ".git", "inventories/lab", "dist", "benchmarks", "scripts"]
)
def test_artifact_leaves_out(artifact_members, prefix):
    leaked = sorted(m for m in artifact_members if m == prefix or m.startswith(prefix + "/"))
    assert not leaked, "galaxy.yml build_ignore should leave out %s" % leaked[:5]
