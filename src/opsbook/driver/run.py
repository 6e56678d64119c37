"""Run one playbook through ansible-runner and return a typed RunResult.

One run, in order: RunSpec (what to run); the playbook, inventory and vault options checked in
Python before ansible starts; the run's directory; ansible-runner; on cancel, every process of
the run killed; the result.

What ansible-runner writes, and what the driver does about secrets (see events.py):

<state dir>/runs/<run id>/        one dir per run, 0700: runner's private data dir and, since
                                  artifact_dir is <state dir>/runs and ident the run id, its
                                  artifact dir too. runner's rotate_artifacts keeps the newest
                                  20 entries of <state dir>/runs (by mtime) and removes the
                                  rest, whatever they are, once it has written `command`;
                                  runs that share a state dir start one at a time (StartLock,
                                  <state dir>/runs.lock) so two rotations never race
  env/settings                    runner settings only (poll interval, quiet). Nothing else in
                                  env/: suppress_env_files=True, and extra vars go through a
                                  temp `-e @file` outside the run dir
  command                         runner writes command line, cwd and the FULL env; the status
                                  handler rewrites it (env values redacted, known secrets
                                  masked) on status "running", before ansible is spawned: the
                                  raw file exists (0600) for the milliseconds in between
  job_events/*.json               every event, scrubbed of known secrets in the event handler
                                  before runner writes it; no_log results are censored by
                                  ansible/runner already. (The callback in ansible writes
                                  transient *-partial.json files that runner deletes; they hold
                                  the same censored data.)
  stdout, stderr                  ansible's text output. Event text is scrubbed as it is
                                  written; plain `verbose` lines (-vvv) are scrubbed when the
                                  run ends
  status, rc                      final status and return code

Facts: runner's per-run jsonfile fact cache is disabled so ansible.cfg's cache applies.

Orphans: ansible-runner kills ansible-playbook's process group on cancel. Processes that left
that group (ssh ControlPersist masters, daemonised module children) still carry the run's
environment, so they are found (Linux /proc) by the `OPSBOOK_RUN_ID=<id>` variable the driver
sets for every run, and killed.
"""

from __future__ import annotations

import configparser
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import ansible_runner
from ansible_runner.exceptions import ConfigurationError

from opsbook.driver import extravars
from opsbook.driver.cancel import CancelCallback, latch
from opsbook.driver.events import (
    Event,
    EventCollector,
    Redactor,
    rewrite_command_artifact,
    secrets_in_env,
    secrets_in_vars,
)
from opsbook.driver.extravars import ExtraVars, YamlError, describe, load_yaml_file
from opsbook.driver.result import InvalidInput, RunResult
from opsbook.paths import playbooks_dir, project_root, state_dir

EventCallback = Callable[[Event], None]
VAULT_PROMPT = r"Vault password[^:\n]*:\s*?$"
# How often runner polls the cancel callback (its default, 5 s, makes Ctrl-C feel dead).
CANCEL_POLL_SECONDS = 0.2
KEEP_RUNS = 20
MARKER = "OPSBOOK_RUN_ID"
_YAML_SUFFIXES = (".yml", ".yaml", ".json")


@dataclass
class RunSpec:
    """One ansible-playbook run.

    playbook: path of the playbook (use resolve_playbook for names under playbooks/).
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


def run_playbook(
    spec: RunSpec,
    *,
    on_event: EventCallback | None = None,
    cancel: CancelCallback | None = None,
    keep_runs: int = KEEP_RUNS,
) -> RunResult:
    """Run `spec` and return its result; raise InvalidInput before starting on bad input.

    on_event receives compact events (events.py) as they happen, already scrubbed.
    cancel is polled while ansible runs (every CANCEL_POLL_SECONDS); True stops the run and
    every process of it. Signals are the caller's: the CLI turns SIGINT/SIGTERM into `cancel`
    (opsbook.driver.cancel.CancelFlag.signals); this function installs no handler.
    keep_runs: how many run dirs runner's rotate_artifacts keeps (this one included; 0: all).
    """
    playbook = check_playbook(Path(spec.playbook).expanduser())
    inventory = check_inventory(list(spec.inventory))
    vault_file = check_vault_password_file(spec.vault_password_file)
    ev = extravars.normalize(spec.extra_vars)
    redactor = Redactor(_known_secrets(spec, ev))
    collector = EventCollector(redactor)
    run_dir, run_id = create_run_dir()
    _write_settings(run_dir)
    start = time.monotonic()
    with extravars.materialize(ev) as ev_args, StartLock(start_lock_path()) as start_lock:
        cmdline = _cmdline(spec, vault_file, ev_args)
        try:
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                # runner's artifact dir is artifact_dir/ident: the run dir itself. So
                # rotate_artifacts, which keeps the newest entries of artifact_dir, rotates
                # whole run dirs (see the module docstring).
                artifact_dir=str(run_dir.parent),
                ident=run_id,
                rotate_artifacts=keep_runs,
                project_dir=str(project_root()),
                playbook=str(playbook),
                inventory=inventory,
                limit=spec.limit,
                tags=",".join(spec.tags) or None,
                skip_tags=",".join(spec.skip_tags) or None,
                verbosity=spec.verbosity or None,
                cmdline=shlex.join(cmdline) if cmdline else None,
                envvars=_envvars(spec, run_id),
                passwords={VAULT_PROMPT: spec.vault_password} if spec.vault_password else None,
                suppress_env_files=True,
                fact_cache_type="ansible.cfg",
                quiet=True,
                timeout=spec.timeout,
                event_handler=_event_handler(collector, on_event),
                status_handler=_status_handler(redactor, start_lock.release),
                # Kill the whole run at once (runner only kills ansible's process group).
                cancel_callback=latch(cancel, on_cancel=partial(kill_run_processes, run_id)),
            )
        except ConfigurationError as exc:
            raise InvalidInput(f"ansible-runner configuration error: {exc}") from exc
        status, rc = str(runner.status), runner.rc
        if status in ("canceled", "timeout"):
            kill_run_processes(run_id)
        command = list(runner.config.command)
    artifacts = Path(runner.config.artifact_dir)
    redactor.scrub_tree(run_dir)
    error = collector.error_text()
    if error is None and not collector.have_recap and rc not in (0, None) and status == "failed":
        error = collector.output_tail()
    return RunResult(
        status=status,
        rc=rc,
        hosts=collector.hosts,
        failures=collector.failures,
        duration=time.monotonic() - start,
        run_dir=run_dir,
        artifacts=artifacts,
        have_recap=collector.have_recap,
        tasks_started=collector.tasks_started,
        error=error,
        command=[redactor.text(arg) for arg in command],
    )


# -- the run's inputs, checked before ansible starts ---------------------------------------


def resolve_playbook(name: str | os.PathLike[str]) -> Path:
    """A playbook given as a path (absolute or relative to cwd) or by name under playbooks/."""
    given = Path(name).expanduser()
    if given.is_file():
        return given.resolve()
    base = playbooks_dir()
    if not given.is_absolute():
        for candidate in (base / given, base / f"{given}.yml", base / f"{given}.yaml"):
            if candidate.is_file():
                return candidate.resolve()
    known = sorted(p.name for p in base.glob("*.yml")) if base.is_dir() else []
    hint = f" (playbooks: {', '.join(known)})" if known else ""
    raise InvalidInput(f"unknown playbook {str(name)!r}: no such file here or in {base}{hint}")


def check_playbook(path: Path) -> Path:
    """The playbook exists, is YAML, and is a list of plays."""
    if not path.is_file():
        raise InvalidInput(f"playbook {path} does not exist")
    try:
        data = load_yaml_file(path)
    except YamlError as exc:
        raise InvalidInput(f"playbook {path} has a YAML syntax error: {describe(exc)}") from exc
    if not isinstance(data, list) or not all(isinstance(play, dict) for play in data):
        raise InvalidInput(f"playbook {path} is not a list of plays")
    return path.resolve()


def _is_host_list(source: str) -> bool:
    return "," in source and not Path(source).exists()


def check_inventory(sources: Sequence[str]) -> list[str]:
    """Absolute inventory sources; defaults to ansible.cfg's. YAML/JSON files must parse.

    ansible only warns about an inventory it cannot parse and then matches no host, so a
    broken or missing inventory is caught here instead.
    """
    chosen = list(sources) or default_inventory()
    if not chosen:
        raise InvalidInput(f"no inventory: pass -i/--inventory or set one in {config_path()}")
    resolved = []
    for source in chosen:
        if _is_host_list(source):
            resolved.append(source)
            continue
        path = Path(source).expanduser()
        if not path.exists():
            raise InvalidInput(f"inventory {source} does not exist")
        if path.is_file() and path.suffix in _YAML_SUFFIXES:
            try:
                load_yaml_file(path)
            except YamlError as exc:
                raise InvalidInput(
                    f"inventory {source} is not valid YAML: {describe(exc)}"
                ) from exc
        resolved.append(str(path.resolve()))
    return resolved


def check_vault_password_file(path: str | os.PathLike[str] | None) -> Path | None:
    """--vault-password-file, else $ANSIBLE_VAULT_PASSWORD_FILE (which ansible reads itself)."""
    if path is not None:
        given = Path(path).expanduser()
        if not given.exists():
            raise InvalidInput(f"vault password file {path} does not exist")
        return given.resolve()
    env = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if env and not Path(env).expanduser().exists():
        raise InvalidInput(f"ANSIBLE_VAULT_PASSWORD_FILE={env} does not exist")
    return None


# -- ansible.cfg (the file ansible itself will use) ----------------------------------------


def config_path() -> Path:
    """$ANSIBLE_CONFIG when the user set it, else the project's ansible.cfg."""
    env = os.environ.get("ANSIBLE_CONFIG")
    return Path(env).expanduser().resolve() if env else project_root() / "ansible.cfg"


def read_setting(section: str, key: str, path: Path | None = None) -> str | None:
    cfg_path = path or config_path()
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        parser.read(cfg_path, encoding="utf-8")
    except configparser.Error:
        return None
    value = parser.get(section, key, fallback=None)
    return value.strip() if value is not None else None


def default_inventory() -> list[str]:
    """Inventory sources ansible would use without -i: $ANSIBLE_INVENTORY, else ansible.cfg's.

    Relative paths in ansible.cfg are resolved against the file's directory, as ansible does.
    """
    env = os.environ.get("ANSIBLE_INVENTORY")
    if env:
        return [s.strip() for s in env.split(",") if s.strip()]
    cfg = config_path()
    value = read_setting("defaults", "inventory", cfg)
    if not value:
        return []
    sources = []
    for item in (s.strip() for s in value.split(",")):
        if item:
            path = Path(item).expanduser()
            sources.append(str(path if path.is_absolute() else cfg.parent / path))
    return sources


# -- the run's directory -------------------------------------------------------------------


def runs_dir() -> Path:
    return state_dir() / "runs"


def start_lock_path() -> Path:
    """Beside runs/, never in it: rotate_artifacts removes whatever runs/ holds."""
    return state_dir() / "runs.lock"


class StartLock:
    """Runs that share a state dir start one at a time. runner's rotate_artifacts lists runs/
    and removes the oldest entries; two runs rotating at once would both remove the same one,
    and the second would fail before ansible starts. Held from before ansible_runner.run
    until runner reports 'running' (after its rotation), or until the run ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> StartLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __exit__(self, *_exc: object) -> None:
        self.release()


def new_run_id() -> str:
    """Sortable by start time: 20260127T063624.123456Z-1a2b3c."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


def create_run_dir() -> tuple[Path, str]:
    """A fresh private data dir (0700) for one run: (path, run id). Old ones are removed by
    runner's rotate_artifacts (run_playbook)."""
    root = runs_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_id = new_run_id()
    path = root / run_id
    path.mkdir(mode=0o700)
    return path, run_id


# -- ansible-runner's options and callbacks ------------------------------------------------


def _write_settings(run_dir: Path) -> None:
    """Runner settings go in env/settings: runner 2.4 drops `settings=` when that file is absent."""
    env = run_dir / "env"
    env.mkdir(mode=0o700, exist_ok=True)
    settings = {"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True}
    (env / "settings").write_text(json.dumps(settings), encoding="utf-8")


def _known_secrets(spec: RunSpec, items: list[ExtraVars]) -> set[str]:
    found = set(spec.secrets) | secrets_in_env(os.environ) | secrets_in_env(dict(spec.envvars))
    for item in items:
        found |= secrets_in_vars(item.variables())
    if spec.vault_password:
        found.add(spec.vault_password)
    return found


def _cmdline(spec: RunSpec, vault_file: Path | None, ev_args: list[str]) -> list[str]:
    args: list[str] = []
    if spec.check:
        args.append("--check")
    if spec.diff:
        args.append("--diff")
    if vault_file is not None:
        args += ["--vault-password-file", str(vault_file)]
    if spec.vault_password:
        args.append("--ask-vault-pass")
    return args + ev_args


def _envvars(spec: RunSpec, run_id: str) -> dict[str, str]:
    """Additions to the inherited environment (the user's ANSIBLE_* and others are kept)."""
    env: dict[str, str] = {MARKER: run_id}
    if "ANSIBLE_CONFIG" not in os.environ:
        env["ANSIBLE_CONFIG"] = str(config_path())
    # runner forces ANSIBLE_HOST_KEY_CHECKING=False unless set: keep ansible.cfg's choice.
    if "ANSIBLE_HOST_KEY_CHECKING" not in os.environ:
        env["ANSIBLE_HOST_KEY_CHECKING"] = read_setting("defaults", "host_key_checking") or "True"
    bindir = Path(sys.executable).parent
    if (bindir / "ansible-playbook").exists() and shutil.which("ansible-playbook") != str(
        bindir / "ansible-playbook"
    ):
        env["PATH"] = os.pathsep.join([str(bindir), os.environ.get("PATH", "")])
    env.update(spec.envvars)
    return env


def _event_handler(
    collector: EventCollector, on_event: EventCallback | None
) -> Callable[[dict[str, Any]], bool]:
    def handle(raw: dict[str, Any]) -> bool:
        with _never_raise():
            event = collector.consume(raw)
            if on_event is not None:
                on_event(event)
        return True

    return handle


def _status_handler(redactor: Redactor, started: Callable[[], None]) -> Callable[..., None]:
    def handle(data: dict[str, Any], runner_config: Any = None) -> None:
        # 'starting' carries the whole environment (a reference to runner's own dict): drop it.
        data.pop("env", None)
        if data.get("status") == "running":
            # runner has rotated the run dirs (rotate_artifacts) by now: the next run may start.
            started()
            if runner_config is not None:
                rewrite_command_artifact(Path(runner_config.artifact_dir) / "command", redactor)

    return handle


@contextmanager
def _never_raise() -> Iterator[None]:
    """An exception in an event callback must not abort runner (ansible would keep running)."""
    try:
        yield
    except BrokenPipeError:
        pass
    except Exception as exc:
        print(f"opsbook: event handling error (run continues): {exc!r}", file=sys.stderr)


# -- what is left of a cancelled run -------------------------------------------------------


def processes_with_env(name: str, value: str) -> list[int]:
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_run_processes(run_id: str, timeout: float = 3.0) -> list[int]:
    """SIGKILL every process of the run until none is left (or `timeout`); the killed pids."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = processes_with_env(MARKER, run_id)
        if not pids or time.monotonic() > deadline:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
