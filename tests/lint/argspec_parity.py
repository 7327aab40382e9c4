#!/usr/bin/env python3
"""Fail when a role's meta/argument_specs.yml options differ from its defaults keys.

Every public variable must be both documented/validated (argument_specs) and
defaulted (defaults/main.yml); drift in either direction is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# The common role owns the stack contract: its variables are aistack_*.
PREFIXES = {"common": "aistack_"}


def parity_errors(role: Path) -> list[str]:
    """Differences between a role's defaults keys and its main entry point options."""
    defaults_file = role / "defaults" / "main.yml"
    spec_file = role / "meta" / "argument_specs.yml"
    if not defaults_file.exists():
        return []
    if not spec_file.exists():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    defaults_values = yaml.safe_load(defaults_file.read_text()) or {}
    defaults = set(defaults_values)
    spec = yaml.safe_load(spec_file.read_text()) or {}
    options = ((spec.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    errors = [f"{role.name}: {key} is in defaults/main.yml but not in argument_specs" for key in sorted(defaults - set(options))]
    errors += [f"{role.name}: {key} is in argument_specs but not in defaults/main.yml" for key in sorted(set(options) - defaults)]
    for key in sorted(defaults & set(options)):
        prefix = PREFIXES.get(role.name, role.name + "_")
        if not key.startswith(prefix):
            errors.append(f"{role.name}: {key} lacks the role prefix '{prefix}'")
        spec_default = (options[key] or {}).get("default")
        if spec_default is not None and spec_default != defaults_values[key]:
            errors.append(f"{role.name}: {key} defaults to {defaults_values[key]!r} but argument_specs says {spec_default!r}")
    return errors


def main(argv: list[str]) -> int:
    roles_dir = Path(argv[1]) if len(argv) > 1 else Path("roles")
    roles = sorted(p for p in roles_dir.iterdir() if p.is_dir())
    errors = [error for role in roles for error in parity_errors(role)]
    for error in errors:
        print(error)
    print(f"argument_specs parity: {len(roles)} roles, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
