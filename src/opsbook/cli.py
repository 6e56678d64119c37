"""The `opsbook` command line (console script)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from opsbook.lab import cli as lab_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
