"""`-e/--extra-vars` as ansible accepts them, and how they reach ansible without persisting.

Each -e value is `key=value ...`, inline JSON/YAML (`{...}`) or `@file`. Inline variables are
written to a private temporary file (0600, in /dev/shm when available) passed as `-e @file` and
removed after the run, so they never land in ansible-runner's env/extravars or in the `command`
artifact. `@file` arguments are passed through by path (vault-encrypted files included).

YAML and JSON (extra vars, and the playbook and inventory checks in run.py) are read by
ansible's own loader (DataLoader), so opsbook accepts exactly what ansible accepts: its tags
(!unsafe, !vault), its error messages with line and column.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.splitter import parse_kv
from ansible.parsing.vault import is_encrypted_file

from opsbook.driver.result import InvalidInput

YamlError = AnsibleError


def load_yaml(text: str) -> Any:
    return DataLoader().load(text)


def load_yaml_file(path: Path) -> Any:
    """Parse a file; errors name the file, line and column."""
    return DataLoader().load_from_file(str(path), cache="none")


def describe(exc: AnsibleError) -> str:
    """ansible's message and where it points (path:line:column), as one line."""
    origin = f" ({exc.obj})" if exc.obj is not None else ""
    return f"{exc.message}{origin}"


def is_vault_encrypted(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return bool(is_encrypted_file(handle))
    except OSError:
        return False


@dataclass(frozen=True)
class ExtraVars:
    """One -e argument: inline variables, or a vars file passed to ansible by path."""

    data: Mapping[str, Any] = field(default_factory=dict)
    file: Path | None = None
    file_data: Mapping[str, Any] | None = None  # parsed content of `file`, None when encrypted
    # Inline JSON/YAML as given: what ansible reads, so its tags (!unsafe) keep their meaning.
    source: str | None = None

    @classmethod
    def inline(cls, data: Mapping[str, Any]) -> ExtraVars:
        return cls(data=dict(data))

    @classmethod
    def parse(cls, text: str, cwd: Path | None = None) -> ExtraVars:
        """Parse one -e value like ansible-playbook does; raise InvalidInput when it cannot."""
        stripped = text.strip()
        if not stripped:
            raise InvalidInput("empty extra vars (-e): expected key=value, JSON/YAML or @file")
        if stripped.startswith("@"):
            return cls._from_file(stripped[1:], cwd or Path.cwd())
        if stripped[0] in "{[":
            try:
                data = load_yaml(stripped)
            except YamlError as exc:
                raise InvalidInput(
                    f"extra vars {text!r} are not valid JSON/YAML: {describe(exc)}"
                ) from exc
            return cls(data=_mapping(data, f"extra vars {text!r}"), source=stripped)
        return cls(data=_parse_kv(text))

    @classmethod
    def _from_file(cls, name: str, cwd: Path) -> ExtraVars:
        path = Path(name).expanduser()
        path = (path if path.is_absolute() else cwd / path).resolve()
        if not path.is_file():
            raise InvalidInput(f"extra vars file {name!r} does not exist")
        if is_vault_encrypted(path):
            return cls(file=path)
        try:
            data = load_yaml_file(path)
        except YamlError as exc:
            raise InvalidInput(
                f"extra vars file {name!r} is not valid YAML/JSON: {describe(exc)}"
            ) from exc
        return cls(file=path, file_data=_mapping(data, f"extra vars file {name!r}"))

    def variables(self) -> Mapping[str, Any]:
        """The variables we can see (inline ones, or a readable file's); {} for vault files."""
        return (self.file_data or {}) if self.file else self.data


def _mapping(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what} must be a mapping of variable names to values")
    return dict(data)


def _parse_kv(text: str) -> dict[str, Any]:
    """key=value words, split and unquoted by ansible's own parse_kv (as ansible-playbook -e
    does); a word without `=` is refused here, where ansible would keep it as _raw_params."""
    try:
        data: dict[str, Any] = parse_kv(text)
    except AnsibleError as exc:
        raise InvalidInput(f"cannot parse extra vars {text!r}: {exc.message}") from exc
    raw = data.pop("_raw_params", None)
    bad = [key for key in data if not key.isidentifier()]
    if raw is not None or bad:
        word = raw if raw is not None else bad[0]
        raise InvalidInput(
            f"cannot parse extra vars {text!r}: {word!r} is not key=value "
            "(use key=value, JSON/YAML like '{\"key\": 1}', or @file)"
        )
    return data


def normalize(items: Sequence[ExtraVars | Mapping[str, Any]]) -> list[ExtraVars]:
    return [i if isinstance(i, ExtraVars) else ExtraVars.inline(i) for i in items]


def _private_tmp_root() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextmanager
def materialize(items: Sequence[ExtraVars]) -> Iterator[list[str]]:
    """Yield ansible-playbook arguments (`-e @path` ...) for `items`; remove temp files after."""
    if not items:
        yield []
        return
    tmp = Path(tempfile.mkdtemp(prefix="opsbook-ev-", dir=_private_tmp_root()))
    try:
        args: list[str] = []
        for index, item in enumerate(items):
            if item.file is not None:
                args += ["-e", f"@{item.file}"]
                continue
            path = tmp / (f"{index}.yml" if item.source is not None else f"{index}.json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                if item.source is not None:
                    handle.write(item.source + "\n")
                else:
                    json.dump(dict(item.data), handle, default=str)
            args += ["-e", f"@{path}"]
        yield args
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
