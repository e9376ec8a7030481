#!/usr/bin/env python3
"""Converts uap-core's regexes.yaml to the regexes.json the binary embeds.

The user-agent rules come from uap-core as YAML. Reading YAML in Rust means a YAML crate, and the
usual one (serde_yaml) is unmaintained, so the rules are converted once, here, and the binary
reads JSON with serde_json, which it has anyway. The YAML stays beside the JSON as the upstream
source; scripts/ci/check-deps.sh regenerates the JSON and fails if it differs.

Every value must come out as a string, or null where the YAML says null: that is how the Rust
parser read the YAML (as strings), so PyYAML's YAML 1.1 typing (numbers, yes/no as booleans)
must not change a rule silently. Anything else is refused.

Usage: python3 scripts/uap-regexes-to-json.py [--check]
Needs PyYAML (`pip install pyyaml` in a venv; scripts/ci/install-ops.sh's .ci/venv has it).
"""
import json
import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent.parent / "src/mapping/uap-core"
SOURCE = HERE / "regexes.yaml"
TARGET = HERE / "regexes.json"
SECTIONS = ("user_agent_parsers", "os_parsers", "device_parsers")


def convert() -> str:
    rules = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    if sorted(rules) != sorted(SECTIONS):
        sys.exit(f"{SOURCE}: expected the sections {SECTIONS}, found {sorted(rules)}")
    for section in SECTIONS:
        for i, rule in enumerate(rules[section]):
            for key, value in rule.items():
                if value is not None and not isinstance(value, str):
                    sys.exit(f"{SOURCE}: {section}[{i}].{key} is {value!r} ({type(value).__name__}), not a string")
    # One rule per line: diffs stay readable when uap-core is updated.
    lines = ["{"]
    for s, section in enumerate(SECTIONS):
        lines.append(f"  {json.dumps(section)}: [")
        body = [f"    {json.dumps(rule, ensure_ascii=False)}" for rule in rules[section]]
        lines.append(",\n".join(body))
        lines.append("  ]" + ("," if s < len(SECTIONS) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    text = convert()
    if sys.argv[1:] == ["--check"]:
        if TARGET.read_text(encoding="utf-8") != text:
            sys.exit(f"{TARGET} is not what {SOURCE} converts to: run python3 scripts/uap-regexes-to-json.py")
        print(f"{TARGET.name} matches {SOURCE.name}")
        return
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
