"""The production inventory, the vault placeholders and the playbooks fit together."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from opsbook.paths import project_root
from playbook_run import ansible_playbook

ROOT = project_root()
PRODUCTION = ROOT / "inventory" / "production"
VAULT_EXAMPLE = PRODUCTION / "group_vars" / "all" / "vault.yml.example"
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))


def _referenced_vault_vars() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("roles/*/defaults/main.yml"), *ROOT.glob("playbooks/**/*.yml")]:
        found.update(re.findall(r"\b(vault_[a-z0-9_]+)", path.read_text()))
    return found


def test_vault_example_lists_every_secret_the_roles_read() -> None:
    example = yaml.safe_load(VAULT_EXAMPLE.read_text())
    missing = _referenced_vault_vars() - set(example)
    assert not missing, f"vault.yml.example lacks {sorted(missing)}"
    unused = {k for k in example if k.startswith("vault_")} - _referenced_vault_vars()
    assert not unused, f"vault.yml.example lists secrets nothing reads: {sorted(unused)}"


def test_vault_file_itself_is_never_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", str(PRODUCTION / "group_vars" / "all" / "vault.yml")],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0


def test_production_inventory_has_three_servers_with_node_ips() -> None:
    out = subprocess.run(
        ["ansible-inventory", "-i", str(PRODUCTION), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    servers = data["k3s_servers"]["hosts"]
    assert len(servers) == 3
    assert set(data["k3s_cluster"]["children"]) >= {"k3s_servers", "k3s_agents"}
    for host in servers:
        assert data["_meta"]["hostvars"][host]["node_ip"]


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_playbook_passes_syntax_check_with_the_production_inventory(playbook) -> None:
    proc = ansible_playbook(playbook, None, "--syntax-check", inventory=PRODUCTION)
    assert proc.returncode == 0, proc.stderr
