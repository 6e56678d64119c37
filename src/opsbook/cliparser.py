"""The argparse parser of every `opsbook` command tree (playbook commands, lab, schedule)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, TypeAlias

from opsbook.exitcodes import ExitCode

# What a command tree's add_parser(subparsers) is given: subcommands are Parsers too.
# (A string: argparse's class is generic only to the type checker.)
Subcommands: TypeAlias = "argparse._SubParsersAction[Parser]"


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with 4 (invalid input) instead of 2 (failed hosts)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.INVALID), f"{self.prog}: error: {message}\n")
