"""What to run: the inputs of one `run_playbook` call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.driver.extravars import ExtraVars


@dataclass
class RunSpec:
    """One ansible-playbook run.

    playbook: path of the playbook (use validate.resolve_playbook for names under playbooks/).
    inventory: inventory sources (paths or `host,` lists); empty means ansible.cfg's.
    extra_vars: -e values in order (later ones win), as ExtraVars or plain mappings.
    vault_password: answered to ansible's "Vault password:" prompt (--ask-vault-pass); kept in
        memory only and scrubbed from all output.
    secrets: more values to scrub from events and artifacts (besides the ones found by name).
    envvars: extra environment for ansible (the caller's environment is inherited).
    timeout: seconds before runner kills the run (status "timeout").
    """

    playbook: Path
    inventory: Sequence[str] = ()
    limit: str | None = None
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    check: bool = False
    diff: bool = False
    extra_vars: Sequence[ExtraVars | Mapping[str, Any]] = ()
    verbosity: int = 0
    vault_password_file: Path | None = None
    vault_password: str | None = field(default=None, repr=False)
    secrets: Sequence[str] = field(default=(), repr=False)
    envvars: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: int | None = None
