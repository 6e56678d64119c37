"""Turn ansible-runner events into opsbook's compact events, the recap and the failures, and
keep secrets out of them and out of the run's artifacts.

Compact event schema (one JSON object per line of `opsbook --json`; keys without a value are
left out, `res` is never copied, so no_log results cannot leak through here):

    event        runner event name: playbook_on_start, playbook_on_play_start,
                 playbook_on_task_start, runner_on_start, runner_on_ok, runner_on_failed,
                 runner_on_skipped, runner_on_unreachable, runner_item_on_*, runner_retry,
                 playbook_on_stats, verbose (a line of ansible output outside any event), ...
    uuid         runner event uuid
    counter      runner event counter (order of events in the run)
    created      ISO 8601 timestamp
    play         play name
    task         task name
    task_path    file:line of the task
    host         inventory host name
    changed      bool, result events only
    failed       bool, result events only (true for unreachable too)
    unreachable  bool, true on runner_on_unreachable
    ignored      bool, a failure under ignore_errors
    msg          result message: `msg` of the result, plus stderr for failed commands, the
                 censored notice for no_log results; for `verbose` events the output line
    duration     seconds the task took on the host
    hosts        playbook_on_stats only: {host: {ok, changed, failed, unreachable, skipped,
                 rescued, ignored}}

Redaction keeps secret values out of the terminal, the JSON output and the run's artifacts.
Layers (see run.py for where each one is applied):
- ansible censors `no_log` results itself; ansible-runner's callback keeps that censoring.
- the run's environment never leaves memory: `redact_env` replaces every value but a few
  harmless ones in the `command` artifact, and the status handler drops `env`.
- `Redactor` replaces known secret values (vault password, extra vars and environment variables
  whose names look secret, values the caller names) with a mask in every event before
  ansible-runner writes it, and in the artifact files after the run (last line of defence).
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opsbook.driver.result import Failure, HostRecap

Event = dict[str, Any]

# -- redaction -----------------------------------------------------------------------------

MASK = "<redacted>"
MIN_SECRET_LENGTH = 6
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api_?key|private_?key|credential|vault", re.IGNORECASE
)
# Paths, ids and ansible's own vault settings (ANSIBLE_VAULT_IDENTITY=default...) are not secrets.
NOT_SECRET_NAME = re.compile(
    r"(_file|_path|_dir|_id|_identity|_identity_list|_id_match)$|^ansible_ask_", re.IGNORECASE
)

# Environment variables whose values the `command` artifact keeps (useful, never secret).
ENV_KEEP = frozenset(
    {
        "PATH",
        "HOME",
        "PWD",
        "LANG",
        "USER",
        "ANSIBLE_CONFIG",
        "ANSIBLE_CALLBACK_PLUGINS",
        "ANSIBLE_STDOUT_CALLBACK",
        "ORIGINAL_STDOUT_CALLBACK",
        "ANSIBLE_RETRY_FILES_ENABLED",
        "ANSIBLE_HOST_KEY_CHECKING",
        "AWX_ISOLATED_DATA_DIR",
        "RUNNER_OMIT_EVENTS",
        "RUNNER_ONLY_FAILED_EVENTS",
        "CONTAINERS_CONF",
        "OPSBOOK_ROOT",
        "OPSBOOK_RUN_ID",
    }
)


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def secrets_in_env(env: Mapping[str, str]) -> set[str]:
    return {value for name, value in env.items() if looks_secret(name)}


def secrets_in_vars(data: Any, inherited: bool = False) -> set[str]:
    """Scalar values under secret-looking keys, at any depth of a vars mapping."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            found |= secrets_in_vars(value, inherited or looks_secret(str(key)))
    elif isinstance(data, list | tuple):
        for value in data:
            found |= secrets_in_vars(value, inherited)
    elif inherited and isinstance(data, str | int | float) and not isinstance(data, bool):
        found.add(str(data))
    return found


def redact_env(env: Mapping[str, Any]) -> dict[str, str]:
    return {k: (str(v) if k in ENV_KEEP else MASK) for k, v in env.items()}


class Redactor:
    """Replaces known secret values (at least MIN_SECRET_LENGTH long) with MASK."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        # JSON files escape some characters: look for the escaped spelling too.
        values |= {json.dumps(s)[1:-1] for s in list(values)}
        self._secrets = sorted(values, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def scrub(self, obj: Any) -> Any:
        """Scrub strings in place inside dicts/lists (so callers' references see the change)."""
        if not self._secrets:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            for key, value in list(obj.items()):
                new_key = self.text(key) if isinstance(key, str) else key
                if new_key != key:
                    del obj[key]
                obj[new_key] = self.scrub(value)
        elif isinstance(obj, list):
            obj[:] = [self.scrub(v) for v in obj]
        return obj

    def scrub_file(self, path: Path) -> bool:
        """Rewrite `path` without secrets; True when it contained any."""
        if not self._secrets:
            return False
        try:
            data = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return False
        clean = self.text(data)
        if clean == data:
            return False
        _atomic_write(path, clean)
        return True

    def scrub_tree(self, root: Path) -> list[Path]:
        """Scrub every regular file under `root`; returns the files that had to change."""
        if not self._secrets:
            return []
        return [p for p in sorted(root.rglob("*")) if p.is_file() and self.scrub_file(p)]


def rewrite_command_artifact(path: Path, redactor: Redactor) -> None:
    """ansible-runner dumps the full environment into artifacts/<ident>/command: redact it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    data["env"] = redact_env(data.get("env") or {})
    data["command"] = [redactor.text(str(arg)) for arg in data.get("command") or []]
    _atomic_write(path, json.dumps(data, ensure_ascii=False))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.opsbook-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    tmp.replace(path)


# -- events --------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
ERROR_LINE = re.compile(r"^\s*(\[ERROR\]|ERROR!)")
MAX_MSG = 2000
RESULT_EVENTS = frozenset(
    {
        "runner_on_ok",
        "runner_on_failed",
        "runner_on_skipped",
        "runner_on_unreachable",
        "runner_item_on_ok",
        "runner_item_on_failed",
        "runner_item_on_skipped",
        "runner_on_async_ok",
        "runner_on_async_failed",
        "runner_retry",
    }
)
FAILED_EVENTS = frozenset(
    {"runner_on_failed", "runner_on_unreachable", "runner_item_on_failed", "runner_on_async_failed"}
)
# playbook_on_stats keys -> HostRecap fields
STATS_FIELDS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_MSG else text[:MAX_MSG] + "..."


def result_message(res: Any, failed: bool) -> str | None:
    if not isinstance(res, dict):
        return None
    if "censored" in res:
        return _text(res["censored"])
    parts = []
    if res.get("msg"):
        parts.append(_text(res["msg"]))
    if failed and isinstance(res.get("stderr"), str) and res["stderr"].strip():
        parts.append(_text(res["stderr"].strip()))
    return ": ".join(parts) or None


def recap_from_stats(data: dict[str, Any]) -> dict[str, HostRecap]:
    counts: dict[str, dict[str, int]] = {}
    for key, field_name in STATS_FIELDS.items():
        for host, value in (data.get(key) or {}).items():
            counts.setdefault(host, {})[field_name] = int(value)
    for host in data.get("processed") or {}:
        counts.setdefault(host, {})
    return {host: HostRecap(host=host, **values) for host, values in counts.items()}


def compact_event(raw: dict[str, Any]) -> Event:
    """The documented subset of a runner event (see the module docstring)."""
    name = str(raw.get("event", ""))
    data = raw.get("event_data") or {}
    out: Event = {"event": name}
    for key in ("uuid", "counter", "created"):
        if raw.get(key) is not None:
            out[key] = raw[key]
    for key in ("play", "task", "task_path", "host"):
        if data.get(key):
            out[key] = str(data[key])
    if name == "playbook_on_play_start" and data.get("name"):
        out["play"] = str(data["name"])
    if name in RESULT_EVENTS:
        res = data.get("res")
        failed = name in FAILED_EVENTS
        out["changed"] = bool(isinstance(res, dict) and res.get("changed"))
        out["failed"] = failed
        if name == "runner_on_unreachable":
            out["unreachable"] = True
        if failed and data.get("ignore_errors"):
            out["ignored"] = True
        msg = result_message(res, failed)
        if msg:
            out["msg"] = msg
        if isinstance(data.get("duration"), int | float):
            out["duration"] = round(float(data["duration"]), 3)
    elif name == "verbose":
        out["msg"] = strip_ansi(str(raw.get("stdout", ""))).rstrip()
    elif name == "playbook_on_stats":
        out["hosts"] = {h: r.counts() for h, r in sorted(recap_from_stats(data).items())}
    return out


class EventCollector:
    """Consumes raw runner events (scrubbing them in place) and builds the run's outcome."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.hosts: dict[str, HostRecap] = {}
        self.have_recap = False
        self.tasks_started = False
        self._failures: list[Failure] = []
        self._lines: deque[str] = deque(maxlen=400)

    def consume(self, raw: dict[str, Any]) -> Event:
        """Scrub `raw` in place (runner writes it to job_events after this) and compact it."""
        self.redactor.scrub(raw)
        event = compact_event(raw)
        name = event["event"]
        if name == "runner_on_start":
            self.tasks_started = True
        elif name == "verbose" and event.get("msg"):
            self._lines.append(event["msg"])
        elif name == "playbook_on_stats":
            self.have_recap = True
            self.hosts = recap_from_stats(raw.get("event_data") or {})
        elif name in ("runner_on_failed", "runner_on_unreachable") and not event.get("ignored"):
            self._failures.append(
                Failure(
                    host=event.get("host", "?"),
                    task=event.get("task", "?"),
                    message=event.get("msg", ""),
                    play=event.get("play", ""),
                    unreachable=name == "runner_on_unreachable",
                    task_path=event.get("task_path", ""),
                )
            )
        return event

    @property
    def failures(self) -> list[Failure]:
        """The failures the recap counts, in event order.

        ansible moves a failure that a `rescue` handled from "failed" to "rescued" in the
        recap, and a real failure ends the host's play, so per host the last `failed` failure
        events (and the last `unreachable` unreachable ones) are the ones that count.
        """
        if not self.have_recap:
            return list(self._failures)
        keep: set[int] = set()
        for host, recap in self.hosts.items():
            for unreachable, count in ((False, recap.failed), (True, recap.unreachable)):
                mine = [
                    i
                    for i, f in enumerate(self._failures)
                    if f.host == host and f.unreachable == unreachable
                ]
                keep.update(mine[-count:] if count else [])
        return [f for i, f in enumerate(self._failures) if i in keep]

    def error_text(self) -> str | None:
        """ansible's own error output (outside any task event): from its first ERROR line."""
        lines = list(self._lines)
        for index, line in enumerate(lines):
            if ERROR_LINE.match(line):
                return "\n".join(line for line in lines[index:] if line.strip()) or None
        return None

    def output_tail(self, count: int = 20) -> str | None:
        lines = [line for line in self._lines if line.strip()]
        return "\n".join(lines[-count:]) or None
