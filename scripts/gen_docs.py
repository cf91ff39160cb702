"""Write docs/modules/<module>.md from each module's own DOCUMENTATION, EXAMPLES and RETURN.

`make docs` runs it; tests/unit/test_docs.py fails when the committed pages are stale.
Usage: python scripts/gen_docs.py [OUTPUT_DIR]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))


MARKUP = re.compile(r"\b(?:O|V|C|RV|I|B|E|M)\(((?:[^()]|\([^()]*\))*)\)")
LINK = re.compile(r"\bL\(([^,()]*),\s*([^()]*)\)")
URL = re.compile(r"\bU\(([^()]*)\)")


def text(value):
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    value = LINK.sub(r"[\1](\2)", str(value))
    value = URL.sub(r"<\1>", value)
    return MARKUP.sub(r"`\1`", value)


def cell(value):
    return text(value).replace("|", "\\|").replace("\n", " ")


def option_rows(options, prefix=""):
    rows = []
    for name in sorted(options):
        spec = options[name]
        full = prefix + name
        kind = spec.get("type", "str")
        if kind == "list" and spec.get("elements"):
            kind = "list of %s" % spec["elements"]
        extra = []
        if spec.get("required"):
            extra.append("**required**")
        if spec.get("choices"):
            extra.append("choices: %s" % ", ".join("`%s`" % c for c in spec["choices"]))
        if "default" in spec and spec["default"] not in (None, [], {}):
            extra.append("default: `%s`" % json.dumps(spec["default"]))
        rows.append("| `%s` | %s | %s %s |" % (full, kind, cell(spec.get("description")), cell("; ".join(extra))))
        if spec.get("suboptions"):
            rows.extend(option_rows(spec["suboptions"], full + "."))
    return rows


def return_rows(returns, prefix=""):
    rows = []
    for name in sorted(returns or {}):
        spec = returns[name]
        rows.append(
            "| `%s` | %s | %s | %s |"
            % (prefix + name, spec.get("type", ""), cell(spec.get("returned")), cell(spec.get("description")))
        )
        if spec.get("contains"):
            rows.extend(return_rows(spec["contains"], prefix + name + "."))
    return rows


def render(name, data):
    doc = data["doc"]
    out = [
        "# splitroute.vpn.%s" % name,
        "",
        "_Generated from the module's documentation by `make docs`; do not edit._",
        "",
    ]
    out += [doc.get("short_description", ""), ""]
    out += [text(line) for line in doc.get("description", [])]
    out.append("")
    if doc.get("requirements"):
        out += ["## Requirements", ""] + ["- %s" % text(r) for r in doc["requirements"]] + [""]
    out += ["## Options", "", "| option | type | description |", "|---|---|---|"]
    out += option_rows(doc.get("options", {}))
    out.append("")
    if doc.get("attributes"):
        out += ["## Attributes", "", "| attribute | support | description |", "|---|---|---|"]
        for key in sorted(doc["attributes"]):
            attr = doc["attributes"][key]
            out.append("| %s | %s | %s |" % (key, attr.get("support", ""), cell(attr.get("description"))))
        out.append("")
    if doc.get("notes"):
        out += ["## Notes", ""] + ["- %s" % text(n) for n in doc["notes"]] + [""]
    out += ["## Examples", "", "```yaml", data.get("examples", "").strip(), "```", ""]
    if data.get("return"):
        out += ["## Return values", "", "| key | type | returned | description |", "|---|---|---|---|"]
        out += return_rows(data["return"])
        out.append("")
    return "\n".join(out)


def role_option_rows(options, prefix=""):
    rows = []
    for name in sorted(options):
        spec = options[name]
        kind = spec.get("type", "str")
        if kind == "list" and spec.get("elements"):
            kind = "list of %s" % spec["elements"]
        extra = []
        if spec.get("required"):
            extra.append("**required**")
        if spec.get("choices"):
            extra.append("choices: %s" % ", ".join("`%s`" % c for c in spec["choices"]))
        if "default" in spec:
            extra.append("default: `%s`" % json.dumps(spec["default"]))
        rows.append(
            "| `%s` | %s | %s %s |" % (prefix + name, kind, cell(spec.get("description")), cell("; ".join(extra)))
        )
        if spec.get("options"):
            rows.extend(role_option_rows(spec["options"], prefix + name + "."))
    return rows


def render_role(name, spec):
    main = spec["argument_specs"]["main"]
    out = ["# splitroute.vpn.%s" % name, "", "_Generated from the role's meta/argument_specs.yml by `make docs`._", ""]
    out += [text(main.get("short_description")), ""] + [text(line) for line in main.get("description", [])] + [""]
    out += ["## Variables", "", "| variable | type | description |", "|---|---|---|"]
    out += role_option_rows(main.get("options", {}))
    return "\n".join(out) + "\n"


def main():
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "modules"
    target.mkdir(parents=True, exist_ok=True)
    roles = target.parent / "roles" if len(sys.argv) <= 1 else target / "roles"
    roles.mkdir(parents=True, exist_ok=True)
    for spec_file in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        (roles / ("%s.md" % role)).write_text(render_role(role, yaml.safe_load(spec_file.read_text())))
    names = ["splitroute.vpn.%s" % m for m in MODULES]
    proc = subprocess.run(
        ["ansible-doc", "--json", "-t", "module", *names],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    docs = json.loads(proc.stdout)
    for module in MODULES:
        (target / ("%s.md" % module)).write_text(render(module, docs["splitroute.vpn.%s" % module]))
    index = ["# Modules", "", "_Generated by `make docs`._", "", "| module | what it does |", "|---|---|"]
    for module in MODULES:
        index.append(
            "| [splitroute.vpn.%s](%s.md) | %s |"
            % (module, module, cell(docs["splitroute.vpn.%s" % module]["doc"].get("short_description")))
        )
    (target / "README.md").write_text("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
