"""Render a role's template the way the template module does, for unit tests: Ansible's own
Templar (its filters and tests, so `bool` is Ansible's, where "no" is false), trim_blocks on,
the role's templates directory as the search path. The variables stand in for the play's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[1]


def render_template(role: str, name: str, variables: Mapping[str, Any]) -> str:
    """roles/<role>/templates/<name> rendered with `variables`; an undefined one fails."""
    templates = ROOT / "roles" / role / "templates"
    return render_text((templates / name).read_text(), variables, templates)


def render_text(text: str, variables: Mapping[str, Any], basedir: Path = ROOT) -> str:
    """Template text (such as a role default's value) as Ansible templates it."""
    loader = DataLoader()
    loader.set_basedir(str(basedir))
    templar = Templar(loader=loader, variables=dict(variables))
    rendered = templar.template(
        trust_as_template(text),
        escape_backslashes=False,
        overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"},
    )
    return str(rendered if rendered is not None else "")
