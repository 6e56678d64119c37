"""The one guard (plugins/action/probed_template.py) and the one probe
(plugins/modules/node_probe.py, plugins/module_utils/opsbook_probe.py), run by ansible on the
controller against real files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from playbook_run import ansible_playbook

HERE = Path(__file__).resolve().parent
PLAYBOOK = HERE / "playbooks" / "probed_template.yml"
INVENTORY = HERE / "playbooks" / "inventory" / "local.yml"


def test_probed_template_trusts_a_matching_probe_and_is_the_template_module_otherwise(
    tmp_path: Path,
) -> None:
    proc = ansible_playbook(PLAYBOOK, {"probe_test_dir": str(tmp_path)}, inventory=INVENTORY)
    assert proc.returncode == 0, proc.stdout[-3000:]
    r = json.loads((tmp_path / "results.json").read_text())
    # node_probe reads what the template module compares: SHA-1, owner, group, mode, type.
    assert r["probed"]["checksum"] == r["written"]["checksum"]
    assert r["probed"]["mode"] == "0640"
    assert (r["probed"]["isreg"], r["probed"]["isdir"], r["probed"]["islnk"]) == (
        True,
        False,
        False,
    )
    # A matching probe: ok, and the node was not asked again.
    assert r["as_wanted"]["changed"] is False
    assert r["as_wanted"]["probe_matched"] is True
    # Another mode: the template module ran and fixed the mode.
    assert r["other_mode"]["changed"] is True
    assert "probe_matched" not in r["other_mode"]
    # Other content in check mode with --diff: the module's own diff, nothing written.
    assert r["checked"]["changed"] is True
    assert "item = three" in r["checked"]["diff"][0]["after"]
    assert "item = one" in r["checked"]["diff"][0]["before"]
    # Then written for real; and without a probe answer it is the module (ok, not matched).
    assert r["rewritten"]["changed"] is True
    assert r["unprobed"]["changed"] is False
    assert "probe_matched" not in r["unprobed"]
    text = (tmp_path / "test.conf").read_text()
    assert text.endswith("item = three\n")
    assert stat.S_IMODE((tmp_path / "test.conf").stat().st_mode) == 0o600
