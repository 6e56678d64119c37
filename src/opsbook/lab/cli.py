"""`opsbook lab ...`: up, down, status, ssh (and `lab kube ...`, added by opsbook.kube)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from opsbook.cliparser import Parser, Subcommands
from opsbook.exitcodes import ExitCode
from opsbook.kube import cli as kube_cli
from opsbook.lab import lab as labmod
from opsbook.lab.image import OS_RELEASES, ImageError, ensure_image
from opsbook.lab.podman import PodmanError


def add_parser(subparsers: Subcommands) -> argparse.ArgumentParser:
    lab = subparsers.add_parser("lab", help="local podman lab of Debian nodes reached by SSH")
    lab.add_argument("--name", default="lab", help="lab name (default: lab)")
    # `--name` is accepted after the subcommand too (`opsbook lab up --name x`).
    named = Parser(add_help=False)
    named.add_argument("--name", default=argparse.SUPPRESS, help="lab name (default: lab)")
    sub = lab.add_subparsers(dest="lab_command", required=True)

    up = sub.add_parser(
        "up", parents=[named], help="build the node image if needed and start the nodes"
    )
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument("--os", choices=sorted(OS_RELEASES), default="debian12")
    up.add_argument(
        "--node",
        action="append",
        metavar="NAME:OS[:GROUPS]",
        help="explicit node (repeatable; replaces --nodes/--os)",
    )
    up.add_argument("--json", action="store_true", help="print the lab description as JSON")

    sub.add_parser("down", parents=[named], help="remove the lab's containers, network and state")
    images = sub.add_parser("images", parents=[named], help="build (or reuse) the node images")
    images.add_argument("--os", action="append", choices=sorted(OS_RELEASES))
    st = sub.add_parser(
        "status", parents=[named], help="show each node's container, address and SSH port"
    )
    st.add_argument("--json", action="store_true")
    ssh = sub.add_parser(
        "ssh", parents=[named], help="open an SSH session (or run a command) on a node"
    )
    ssh.add_argument("node")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    kube_cli.add_parser(sub)
    lab.set_defaults(handler=run)
    return lab


def run(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except (labmod.LabError, ImageError, PodmanError) as exc:
        print(f"opsbook lab: {exc}", file=sys.stderr)
        return ExitCode.ERROR


def _dispatch(args: argparse.Namespace) -> int:
    log = (lambda _msg: None) if getattr(args, "json", False) else print
    if args.lab_command == "up":
        specs = (
            [labmod.NodeSpec.parse(n) for n in args.node]
            if args.node
            else labmod.default_specs(args.nodes, args.os)
        )
        lab = labmod.up(args.name, specs, log=log)
        if args.json:
            print(lab.to_json())
        return ExitCode.OK
    if args.lab_command == "down":
        labmod.down(args.name)
        return ExitCode.OK
    if args.lab_command == "images":
        for os_key in args.os or sorted(OS_RELEASES):
            print(ensure_image(os_key))
        return ExitCode.OK
    if args.lab_command == "status":
        rows = labmod.status(args.name)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print("  ".join(f"{k}={v}" for k, v in row.items()))
        return ExitCode.OK
    if args.lab_command == "ssh":
        cmd = labmod.ssh_command(labmod.load(args.name), args.node, args.command)
        os.execvp(cmd[0], cmd)
    return ExitCode.INVALID
