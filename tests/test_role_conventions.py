"""Every role follows the project's conventions (README "Writing a role")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from opsbook import roledocs
from opsbook.paths import project_root

ROLES = sorted(p for p in (project_root() / "roles").iterdir() if (p / "tasks").is_dir())
INCLUDE_KEYS = {
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "ansible.builtin.include_vars",
    "block",
}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _defaults(role: Path) -> dict[str, object]:
    return yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_role_has_the_standard_files(role: Path) -> None:
    for rel in ("defaults/main.yml", "meta/argument_specs.yml", "meta/main.yml", "README.md"):
        assert (role / rel).is_file(), f"{role.name}: missing {rel}"
    scenarios = list((role / "molecule").glob("*/molecule.yml"))
    assert scenarios, f"{role.name}: no molecule scenario"
    for scenario in scenarios:
        verify = scenario.parent / "verify.yml"
        assert verify.is_file(), f"{scenario.parent}: no verify.yml"
        checked = _asserted_probes(verify)
        assert checked, (
            f"{scenario.parent}: verify.yml must read the node's state (a command, stat, "
            "slurp, uri, k8s_info ... registered) and assert on what it read"
        )


# Modules that read a node's (or the cluster's) state without changing it.
PROBE_MODULES = {
    "ansible.builtin.command",
    "ansible.builtin.shell",
    "ansible.builtin.raw",
    "ansible.builtin.slurp",
    "ansible.builtin.stat",
    "ansible.builtin.uri",
    "ansible.builtin.wait_for",
    "ansible.builtin.getent",
    "kubernetes.core.k8s_info",
}


def _tasks(tasks: list[dict] | None) -> list[dict]:
    found = []
    for task in tasks or []:
        found.append(task)
        for key in ("block", "rescue", "always"):
            found += _tasks(task.get(key))
    return found


def _asserted_probes(verify: Path) -> list[str]:
    """The registered results of probe tasks that an `ansible.builtin.assert` checks."""
    tasks = [t for play in yaml.safe_load(verify.read_text()) for t in _tasks(play.get("tasks"))]
    probed = {t["register"] for t in tasks if "register" in t and PROBE_MODULES & set(t)}
    conditions = []
    for task in tasks:
        that = (task.get("ansible.builtin.assert") or {}).get("that", [])
        conditions += that if isinstance(that, list) else [that]
    text = "\n".join(map(str, conditions))
    return sorted(name for name in probed if re.search(rf"\b{re.escape(name)}\b", text))


def test_the_verify_check_refuses_a_verify_that_only_runs_tasks(tmp_path: Path) -> None:
    verify = tmp_path / "verify.yml"
    verify.write_text(
        "- hosts: all\n  tasks:\n"
        "    - ansible.builtin.command: 'true'\n      register: out\n"
        "    - ansible.builtin.debug: {var: out}\n"
        "    - ansible.builtin.assert: {that: [1 == 1]}\n"
    )
    assert _asserted_probes(verify) == []
    verify.write_text(
        "- hosts: all\n  tasks:\n"
        "    - block:\n        - ansible.builtin.stat: {path: /etc/x}\n          register: x\n"
        "    - ansible.builtin.assert: {that: [x.stat.exists]}\n"
    )
    assert _asserted_probes(verify) == ["x"]


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_defaults_are_prefixed_and_documented_line_by_line(role: Path) -> None:
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^([a-z0-9_]+):", line)
        if not match:
            continue
        name = match.group(1)
        assert name.startswith(f"{role.name}_"), f"{role.name}: {name} lacks the role prefix"
        previous = lines[index - 1].strip() if index else ""
        assert previous.startswith("#"), f"{role.name}: {name} has no comment above it"


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_argument_specs_match_defaults(role: Path) -> None:
    options = roledocs.role_options(role)
    defaults = _defaults(role)
    assert set(defaults) <= set(options), (
        f"{role.name}: defaults not in argument_specs: {sorted(set(defaults) - set(options))}"
    )
    for name, option in options.items():
        assert option.get("description"), f"{role.name}: {name} has no description"
        assert option.get("type"), f"{role.name}: {name} has no type"
        if name not in defaults:
            assert option.get("required") or "default" not in option, (
                f"{role.name}: {name} has a spec default but no defaults/main.yml entry"
            )
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue
        if "default" in option:
            assert option["default"] == value, f"{role.name}: {name} default differs from spec"


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_readme_table_is_generated_from_argument_specs(role: Path) -> None:
    readme = (role / "README.md").read_text()
    assert roledocs.render(readme, roledocs.variables_table(role)) == readme, (
        f"{role.name}: README variables table is stale (make docs)"
    )


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_main_tasks_only_include_per_concern_files(role: Path) -> None:
    main = yaml.safe_load((role / "tasks" / "main.yml").read_text())
    for task in main:
        keys = set(task)
        assert keys & INCLUDE_KEYS, f"{role.name}: tasks/main.yml task {task.get('name')!r}"
