"""Render each role's variable table from meta/argument_specs.yml into its README.

argument_specs.yml is the single source of truth for a role's options (type, default,
description); the README table between the markers below is generated from it:

    python -m opsbook.roledocs            # rewrite every role README's table
    python -m opsbook.roledocs --check    # exit 1 when a README is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from opsbook.paths import project_root

BEGIN = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml: make docs) -->"
END = "<!-- END VARIABLES -->"


def role_options(role_dir: Path) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())
    options: dict[str, dict[str, Any]] = spec["argument_specs"]["main"].get("options", {})
    return options


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(option: dict[str, Any]) -> str:
    if "default" not in option:
        return "*required*" if option.get("required") else "*none*"
    return f"`{_cell(json.dumps(option['default']))}`"


def variables_table(role_dir: Path) -> str:
    rows = ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, option in role_options(role_dir).items():
        description = option.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        kind = option.get("type", "str")
        if kind == "list" and "elements" in option:
            kind = f"list of {option['elements']}"
        rows.append(f"| `{name}` | {kind} | {_default(option)} | {_cell(description)} |")
    return "\n".join(rows)


def render(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise ValueError("README lacks the variables markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for role_dir in sorted((project_root() / "roles").iterdir()):
        readme = role_dir / "README.md"
        if not (role_dir / "meta" / "argument_specs.yml").exists() or not readme.exists():
            continue
        current = readme.read_text()
        wanted = render(current, variables_table(role_dir))
        if wanted != current:
            stale.append(role_dir.name)
            if not args.check:
                readme.write_text(wanted)
    if args.check and stale:
        print(f"README variable tables out of date: {', '.join(stale)} (run make docs)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
