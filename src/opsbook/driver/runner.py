"""Run one playbook through ansible-runner and return a typed RunResult.

What ansible-runner writes, and what the driver does about secrets (see redact.py):

<state dir>/runs/<run id>/                  private data dir, 0700, one per run (last 20 kept)
  env/settings                              runner settings only (poll interval, quiet). Nothing
                                            else in env/: suppress_env_files=True, and extra vars
                                            go through a temp `-e @file` outside the run dir
  artifacts/<run id>/command                runner writes command line, cwd and the FULL env;
                                            the status handler rewrites it (env values redacted,
                                            known secrets masked) on status "running", before
                                            ansible is spawned: the raw file exists (0600) for
                                            the milliseconds in between
  artifacts/<run id>/job_events/*.json      every event, scrubbed of known secrets in the event
                                            handler before runner writes it; no_log results are
                                            censored by ansible/runner already. (The callback in
                                            ansible writes transient *-partial.json files that
                                            runner deletes; they hold the same censored data.)
  artifacts/<run id>/stdout, stderr         ansible's text output. Event text is scrubbed as it
                                            is written; plain `verbose` lines (-vvv) are scrubbed
                                            when the run ends
  artifacts/<run id>/status, rc             final status and return code

Facts: runner's per-run jsonfile fact cache is disabled so ansible.cfg's cache applies.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import ansible_runner
from ansible_runner.exceptions import ConfigurationError

from opsbook.driver import extravars, rundir, validate
from opsbook.driver.ansiblecfg import config_path, read_setting
from opsbook.driver.cancel import CancelCallback, latch
from opsbook.driver.errors import InvalidInput
from opsbook.driver.events import Event, EventCollector
from opsbook.driver.orphans import MARKER, kill_run_processes
from opsbook.driver.redact import Redactor, rewrite_command_artifact, secrets_in_env
from opsbook.driver.redact import secrets_in_vars as vars_secrets
from opsbook.driver.result import RunResult
from opsbook.driver.spec import RunSpec
from opsbook.paths import project_root

EventCallback = Callable[[Event], None]
VAULT_PROMPT = r"Vault password[^:\n]*:\s*?$"
# How often runner polls the cancel callback (its default, 5 s, makes Ctrl-C feel dead).
CANCEL_POLL_SECONDS = 0.2


def run_playbook(
    spec: RunSpec,
    *,
    on_event: EventCallback | None = None,
    cancel: CancelCallback | None = None,
    keep_runs: int = rundir.KEEP_RUNS,
) -> RunResult:
    """Run `spec` and return its result; raise InvalidInput before starting on bad input.

    on_event receives compact events (events.py) as they happen, already scrubbed.
    cancel is polled while ansible runs (every CANCEL_POLL_SECONDS); True stops the run and
    every process of it. Signals are the caller's: the CLI turns SIGINT/SIGTERM into `cancel`
    (opsbook.driver.cancel.CancelFlag.signals); this function installs no handler.
    """
    playbook = validate.check_playbook(Path(spec.playbook).expanduser())
    inventory = validate.check_inventory(list(spec.inventory))
    vault_file = validate.check_vault_password_file(spec.vault_password_file)
    ev = extravars.normalize(spec.extra_vars)
    redactor = Redactor(_known_secrets(spec, ev))
    collector = EventCollector(redactor)
    run_dir, run_id = rundir.create_run_dir(keep_runs)
    _write_settings(run_dir)
    start = time.monotonic()
    with extravars.materialize(ev) as ev_args:
        cmdline = _cmdline(spec, vault_file, ev_args)
        try:
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                ident=run_id,
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
                status_handler=_status_handler(redactor),
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


def _write_settings(run_dir: Path) -> None:
    """Runner settings go in env/settings: runner 2.4 drops `settings=` when that file is absent."""
    env = run_dir / "env"
    env.mkdir(mode=0o700, exist_ok=True)
    settings = {"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True}
    (env / "settings").write_text(json.dumps(settings), encoding="utf-8")


def _known_secrets(spec: RunSpec, items: list[extravars.ExtraVars]) -> set[str]:
    found = set(spec.secrets) | secrets_in_env(os.environ) | secrets_in_env(dict(spec.envvars))
    for item in items:
        found |= vars_secrets(item.variables())
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


def _status_handler(redactor: Redactor) -> Callable[..., None]:
    def handle(data: dict[str, Any], runner_config: Any = None) -> None:
        # 'starting' carries the whole environment (a reference to runner's own dict): drop it.
        data.pop("env", None)
        if data.get("status") == "running" and runner_config is not None:
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
