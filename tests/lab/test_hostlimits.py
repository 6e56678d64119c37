"""The lab raises the controller's inotify limits its systemd containers need."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.lab import hostlimits


def _limits(tmp_path: Path, instances: int, watches: int) -> Path:
    (tmp_path / "max_user_instances").write_text(f"{instances}\n")
    (tmp_path / "max_user_watches").write_text(f"{watches}\n")
    return tmp_path


def test_low_limits_are_raised_and_said(tmp_path: Path) -> None:
    root = _limits(tmp_path, 128, 8192)
    said: list[str] = []
    hostlimits.ensure_inotify(said.append, root)
    assert (root / "max_user_instances").read_text().strip() == "1024"
    assert (root / "max_user_watches").read_text().strip() == "524288"
    assert len(said) == 2
    assert "from 128 to 1024" in said[0]


def test_higher_limits_are_left_alone(tmp_path: Path) -> None:
    root = _limits(tmp_path, 8192, 1048576)
    said: list[str] = []
    hostlimits.ensure_inotify(said.append, root)
    assert (root / "max_user_instances").read_text().strip() == "8192"
    assert said == []


def test_a_limit_that_cannot_be_raised_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _limits(tmp_path, 128, 1048576)

    def refuse(self: Path, *_args: object, **_kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)  # what a non-root user or a container gets
    with pytest.raises(hostlimits.HostLimitError, match=r"sysctl -w fs\.inotify\.max_user_"):
        hostlimits.ensure_inotify(lambda _m: None, root)
    assert (root / "max_user_instances").read_text().strip() == "128"


def test_the_real_limits_are_high_enough_after_a_lab_check() -> None:
    hostlimits.ensure_inotify(lambda _m: None)
    current = int((hostlimits.INOTIFY / "max_user_instances").read_text())
    assert current >= hostlimits.WANTED["max_user_instances"]
