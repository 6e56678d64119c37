"""The `opsbook` command line (console script).

Playbook commands (site, harden, k3s, deploy, cf-refresh, run) come from the registry in
opsbook.commands; other command trees (`opsbook lab ...`) are mounted from MOUNTS.
Exit codes: opsbook.exitcodes (0 ok, 2 failed hosts, 3 unreachable hosts, 4 invalid input
or configuration, 130 cancelled, 1 any other error).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial

from opsbook import schedule
from opsbook.cliparser import Parser, Subcommands
from opsbook.commands import COMMANDS, PlaybookCommand
from opsbook.driver import ExitCode, ExtraVars, InvalidInput, RunSpec, run_playbook
from opsbook.driver.cancel import CancelFlag
from opsbook.driver.output import make_output
from opsbook.driver.run import resolve_playbook
from opsbook.lab import cli as lab_cli
from opsbook.paths import playbooks_dir

Mount = Callable[[Subcommands], argparse.ArgumentParser]

# Command trees with their own parsers; each sets `handler` (args -> exit code) as a default.
MOUNTS: list[Mount] = [lab_cli.add_parser, schedule.add_parser]
# Modules imported before the parser is built, to register PlaybookCommands or add MOUNTS.
EXTENSIONS: list[str] = []


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every playbook command shares (ansible-playbook's, where they exist)."""
    add = parser.add_argument
    add(
        "-i",
        "--inventory",
        action="append",
        default=[],
        metavar="PATH",
        help="inventory file, directory or host list (repeatable; default: ansible.cfg's)",
    )
    add("-l", "--limit", metavar="PATTERN", help="limit the run to these hosts/groups")
    add(
        "-t",
        "--tags",
        action="append",
        default=[],
        metavar="TAGS",
        help="only run tasks with these tags (comma separated, repeatable)",
    )
    add(
        "--skip-tags",
        action="append",
        default=[],
        metavar="TAGS",
        help="skip tasks with these tags (comma separated, repeatable)",
    )
    add("-C", "--check", action="store_true", help="dry run: change nothing")
    add("-D", "--diff", action="store_true", help="show the differences in changed files")
    add(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help="key=value, JSON/YAML or @file, as ansible (repeatable)",
    )
    add("--vault-password-file", metavar="PATH", help="file with the ansible-vault password")
    add("-J", "--ask-vault-pass", action="store_true", help="prompt for the vault password")
    add("--timeout", type=int, metavar="SECONDS", help="stop the run after this long")
    add("--json", action="store_true", help="print one JSON object per event, then a summary")
    add(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more ansible output (repeatable, passed on as -v/-vv/...)",
    )


def build_parser() -> Parser:
    for module in EXTENSIONS:
        importlib.import_module(module)
    parser = Parser(prog="opsbook", description="Run opsbook's playbooks and its local lab.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        cmd = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.playbook is None:
            cmd.add_argument("playbook", metavar="PLAYBOOK")
        add_run_options(cmd)
        if command.add_arguments is not None:
            command.add_arguments(cmd)
        cmd.set_defaults(handler=partial(run_command, command))
    for mount in MOUNTS:
        mount(sub)
    return parser


def spec_from_args(command: PlaybookCommand, args: argparse.Namespace) -> RunSpec:
    """The RunSpec for a parsed command line; InvalidInput for bad extra vars or playbook."""
    playbook = (
        resolve_playbook(args.playbook)
        if command.playbook is None
        else playbooks_dir() / command.playbook
    )
    extra_vars = [ExtraVars.parse(text) for text in args.extra_vars]
    if command.extra_vars is not None and (own := command.extra_vars(args)):
        extra_vars.append(ExtraVars.inline(own))
    vault_password = getpass.getpass("Vault password: ") if args.ask_vault_pass else None
    return RunSpec(
        playbook=playbook,
        inventory=args.inventory,
        limit=args.limit,
        tags=args.tags,
        skip_tags=args.skip_tags,
        check=args.check,
        diff=args.diff,
        extra_vars=extra_vars,
        verbosity=args.verbose,
        vault_password_file=args.vault_password_file,
        vault_password=vault_password,
        timeout=args.timeout,
    )


def run_command(command: PlaybookCommand, args: argparse.Namespace) -> int:
    out = make_output(json_lines=args.json, verbosity=args.verbose)
    cancel = CancelFlag()
    try:
        spec = spec_from_args(command, args)  # outside the handlers: Ctrl-C at a prompt quits
        # From here Ctrl-C and SIGTERM cancel the run: ansible-runner polls the flag, and the
        # run's processes are stopped; the exit code says cancelled.
        with cancel.signals():
            before = command.before_run
            if before is not None and (code := before(args, spec, cancel)) is not None:
                return code
            with out:
                result = run_playbook(spec, on_event=out.event, cancel=cancel)
    except InvalidInput as exc:
        out.invalid(str(exc))
        return int(ExitCode.INVALID)
    try:
        out.result(result)
    except BrokenPipeError:  # `opsbook ... --json | head`: keep the exit code, drop the output
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return int(result.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("opsbook: cancelled", file=sys.stderr)
        return int(ExitCode.CANCELLED)


if __name__ == "__main__":
    sys.exit(main())
