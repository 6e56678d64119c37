"""`opsbook lab kube up|down|status`: the test control plane, in the background.

    opsbook lab [--name NAME] kube up [--nodes 3] [--no-crds] [--json]
    opsbook lab [--name NAME] kube status [--json]
    opsbook lab [--name NAME] kube down

NAME defaults to `lab` (as `opsbook lab`'s), and may also follow the subcommand.
State (PKI, kubeconfig, etcd data, logs, pid files) lives in
`<state dir>/kube/<name>/` (`.opsbook/kube/<name>/`, gitignored); the kubeconfig is
`.opsbook/kube/<name>/kubeconfig`. `up` leaves the processes running detached; `down` stops
them all and removes the directory.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from opsbook.kube.binaries import KubeError
from opsbook.kube.controlplane import ControlPlane
from opsbook.paths import state_dir

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 4
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


def directory(name: str) -> Path:
    return state_dir() / "kube" / name


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Mount `kube` under `opsbook lab` (called from opsbook.lab.cli)."""
    kube = subparsers.add_parser(
        "kube", help="test control plane: etcd + kube-apiserver + kwok fake nodes on 127.0.0.1"
    )
    named = argparse.ArgumentParser(add_help=False)
    # Like the lab's own subcommands: `--name` before or after the subcommand; default "lab".
    named.add_argument(
        "--name", dest="name", default=argparse.SUPPRESS, help="control plane name (default: lab)"
    )
    named.add_argument("--json", action="store_true", help="print the status as JSON")
    sub = kube.add_subparsers(dest="kube_command", required=True)
    up = sub.add_parser("up", parents=[named], help="start it in the background (detached)")
    up.add_argument("--nodes", type=int, default=3, help="kwok fake nodes (default 3)")
    up.add_argument("--no-crds", action="store_true", help="do not apply ../shared/kube-crds")
    sub.add_parser("status", parents=[named], help="processes, API readiness, Ready nodes")
    sub.add_parser("down", parents=[named], help="stop every process and remove its state")
    kube.set_defaults(handler=run)
    return kube


def run(args: argparse.Namespace) -> int:
    name = args.name
    if not NAME_RE.match(name):
        print(f"opsbook lab kube: bad name {name!r}", file=sys.stderr)
        return EXIT_INVALID
    try:
        return _dispatch(args, directory(name))
    except KubeError as exc:
        print(f"opsbook lab kube: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _print_status(info: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    procs = info["processes"]
    assert isinstance(procs, dict)
    print(f"control plane {info['name']}: api {info['api']} ready={info['api_ready']}")
    print(f"  kubeconfig {info['kubeconfig']}")
    print(f"  etcd {info['etcd']}")
    print(f"  ready nodes: {', '.join(info['ready_nodes']) or 'none'}")  # type: ignore[arg-type]
    for proc, row in procs.items():
        print(f"  {proc}: {'running pid ' + str(row['pid']) if row['running'] else 'not running'}")


def _dispatch(args: argparse.Namespace, path: Path) -> int:
    if args.kube_command == "up":
        if (path / "state.json").exists():
            existing = ControlPlane.load(path)
            running = existing.running()
            if all(running.values()):
                _print_status(existing.status(), args.json)
                return EXIT_OK
            # Partly dead (a crash, a reboot): clear it and start afresh.
            existing.stop()
        cp = ControlPlane(
            path,
            name=args.name,
            nodes=args.nodes,
            apply_crds=not args.no_crds,
            log=(lambda _m: None) if args.json else print,
        )
        cp.start()
        if args.json:
            _print_status(cp.status(), True)
        else:
            print(f"export KUBECONFIG={cp.kubeconfig}")
        return EXIT_OK
    if args.kube_command == "status":
        if not (path / "state.json").exists():
            print(f"opsbook lab kube: no control plane named {args.name!r} is up")
            return EXIT_ERROR
        info = ControlPlane.load(path).status()
        _print_status(info, args.json)
        return EXIT_OK if info["api_ready"] else EXIT_ERROR
    if args.kube_command == "down":
        if path.exists():
            if (path / "state.json").exists():
                ControlPlane.load(path).remove()
            else:
                ControlPlane(path).remove()
        print(f"control plane {args.name}: down")
        return EXIT_OK
    return EXIT_INVALID
