"""`opsbook lab kube up|down|status`: a k3s test-server cluster on the controller, in the
background.

    opsbook lab [--name NAME] kube up [--nodes 3] [--json]
    opsbook lab [--name NAME] kube status [--json]
    opsbook lab [--name NAME] kube down

NAME defaults to `lab` (as `opsbook lab`'s), and may also follow the subcommand. `--nodes N`
is one `k3s server` and N-1 `k3s agent`s of the opsbook k3s test server (a test double of
k3s: see the README), on a 127.0.0.x address of their own. State (the server's data dir,
kubeconfig, logs, pid files) lives in `<state dir>/kube/<name>/` (`.opsbook/kube/<name>/`,
gitignored); the kubeconfig is `.opsbook/kube/<name>/kubeconfig`. `up` leaves the processes
running detached; `down` stops them all and removes the directory.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from opsbook.cliparser import Parser, Subcommands
from opsbook.exitcodes import ExitCode
from opsbook.kube.binaries import KubeError
from opsbook.kube.testserver import TestCluster
from opsbook.paths import state_dir

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


def directory(name: str) -> Path:
    return state_dir() / "kube" / name


def add_parser(subparsers: Subcommands) -> argparse.ArgumentParser:
    """Mount `kube` under `opsbook lab` (called from opsbook.lab.cli)."""
    kube = subparsers.add_parser(
        "kube", help="k3s test server cluster (a test double of k3s) on a 127.0.0.x address"
    )
    named = Parser(add_help=False)
    # Like the lab's own subcommands: `--name` before or after the subcommand; default "lab".
    named.add_argument(
        "--name", dest="name", default=argparse.SUPPRESS, help="cluster name (default: lab)"
    )
    named.add_argument("--json", action="store_true", help="print the status as JSON")
    sub = kube.add_subparsers(dest="kube_command", required=True)
    up = sub.add_parser("up", parents=[named], help="start it in the background (detached)")
    up.add_argument(
        "--nodes", type=int, default=3, help="nodes: one server and N-1 agents (default 3)"
    )
    sub.add_parser("status", parents=[named], help="processes, API readiness, Ready nodes")
    sub.add_parser("down", parents=[named], help="stop every process and remove its state")
    kube.set_defaults(handler=run)
    return kube


def run(args: argparse.Namespace) -> int:
    name = args.name
    if not NAME_RE.match(name):
        print(f"opsbook lab kube: bad name {name!r}", file=sys.stderr)
        return ExitCode.INVALID
    try:
        return _dispatch(args, directory(name))
    except KubeError as exc:
        print(f"opsbook lab kube: {exc}", file=sys.stderr)
        return ExitCode.ERROR


def _print_status(info: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    procs = info["processes"]
    assert isinstance(procs, dict)
    print(f"k3s test server {info['name']}: api {info['api']} ready={info['api_ready']}")
    print(f"  kubeconfig {info['kubeconfig']}")
    print(f"  etcd {info['etcd']}")
    print(f"  ready nodes: {', '.join(info['ready_nodes']) or 'none'}")  # type: ignore[arg-type]
    for proc, row in procs.items():
        print(f"  {proc}: {'running pid ' + str(row['pid']) if row['running'] else 'not running'}")


def _dispatch(args: argparse.Namespace, path: Path) -> int:
    if args.kube_command == "up":
        if args.nodes < 1:
            print("opsbook lab kube: --nodes must be at least 1", file=sys.stderr)
            return ExitCode.INVALID
        if (path / "state.json").exists():
            existing = TestCluster.load(path)
            running = existing.running()
            if all(running.values()):
                _print_status(existing.status(), args.json)
                return ExitCode.OK
            # Partly dead (a crash, a reboot): clear it and start afresh.
            existing.stop()
        cp = TestCluster(
            path,
            name=args.name,
            agents=args.nodes - 1,
            log=(lambda _m: None) if args.json else print,
        )
        cp.start()
        if args.json:
            _print_status(cp.status(), True)
        else:
            print(f"export KUBECONFIG={cp.kubeconfig}")
        return ExitCode.OK
    if args.kube_command == "status":
        if not (path / "state.json").exists():
            print(f"opsbook lab kube: no k3s test server named {args.name!r} is up")
            return ExitCode.ERROR
        info = TestCluster.load(path).status()
        _print_status(info, args.json)
        return ExitCode.OK if info["api_ready"] else ExitCode.ERROR
    if args.kube_command == "down":
        if path.exists():
            if (path / "state.json").exists():
                TestCluster.load(path).remove()
            else:
                TestCluster(path).remove()
        print(f"k3s test server {args.name}: down")
        return ExitCode.OK
    return ExitCode.INVALID
