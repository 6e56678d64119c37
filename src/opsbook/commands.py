"""The playbook subcommands of `opsbook`, as a registry other modules can extend.

A command maps a name to a playbook under playbooks/ (or takes a PLAYBOOK argument when
`playbook` is None) and may add options, turn them into extra vars, or act before the run:

    from opsbook.commands import PlaybookCommand, register

    def _plan_options(parser):
        parser.add_argument("--plan", action="store_true", help="print the plan and exit")

    register(PlaybookCommand("schedule", "schedule.yml", "...", add_arguments=_plan_options))

`register` replaces a command of the same name, so a module can also extend a built-in one
(e.g. give `deploy` a `before_run` that prints its plan). The CLI builds its parser from
`COMMANDS` when it starts; import your module from opsbook.cli's EXTENSIONS list.

It is the CLI layer, above the driver: it imports the driver (and `opsbook deploy`'s plan),
never the other way round.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.deploy import print_plan
from opsbook.driver.cancel import CancelCallback
from opsbook.driver.run import RunSpec

AddArguments = Callable[[argparse.ArgumentParser], None]
ExtraVarsFrom = Callable[[argparse.Namespace], Mapping[str, Any]]
BeforeRun = Callable[[argparse.Namespace, RunSpec, CancelCallback], int | None]


@dataclass(frozen=True)
class PlaybookCommand:
    """name: subcommand; playbook: file under playbooks/ (None: a PLAYBOOK argument).

    add_arguments: adds the command's own options to its parser.
    extra_vars: extra vars from those options (applied after every -e, so they win).
    before_run: called with the finished RunSpec and the command's cancel callback (Ctrl-C);
    returning an int exits with it, no run.
    """

    name: str
    playbook: str | None
    help: str
    add_arguments: AddArguments | None = None
    extra_vars: ExtraVarsFrom | None = None
    before_run: BeforeRun | None = None


COMMANDS: dict[str, PlaybookCommand] = {}


def register(command: PlaybookCommand) -> PlaybookCommand:
    COMMANDS[command.name] = command
    return command


def _release_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--release", metavar="TAG", help="release tag to deploy (sets app_release)")


def _release_vars(args: argparse.Namespace) -> Mapping[str, Any]:
    return {"app_release": args.release} if args.release else {}


register(PlaybookCommand("site", "site.yml", "converge everything (playbooks/site.yml)"))
register(PlaybookCommand("harden", "harden.yml", "OS hardening only (playbooks/harden.yml)"))


register(
    PlaybookCommand(
        "k3s",
        "k3s.yml",
        "install, configure and upgrade the k3s cluster (playbooks/k3s.yml)",
    )
)
register(
    PlaybookCommand(
        "deploy",
        "apps.yml",
        "deploy the applications (playbooks/apps.yml)",
        add_arguments=_release_option,
        extra_vars=_release_vars,
        before_run=print_plan,  # the app_rollout role's plan, before acting
    )
)
register(
    PlaybookCommand(
        "cf-refresh",
        "ufw-cf-refresh.yml",
        "refresh the firewall's Cloudflare ranges (playbooks/ufw-cf-refresh.yml)",
    )
)
register(PlaybookCommand("run", None, "run any playbook (a path, or a name under playbooks/)"))
