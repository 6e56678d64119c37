"""Start, inspect and remove a lab: a podman network and systemd node containers."""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opsbook.lab import hostlimits, image, pki, sshkeys
from opsbook.lab.inventory import write_inventory
from opsbook.lab.podman import PodmanError, podman
from opsbook.paths import state_dir

LABEL = "opsbook.lab"
SUBNET_POOL = ipaddress.ip_network("10.123.0.0/16")
FIRST_HOST = 11
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
SSH_WAIT_SECONDS = 90
# ip -> the SSH port that answered last (see answering_ssh_port).
_ANSWERED: dict[str, int] = {}

Log = Callable[[str], None]


class LabError(RuntimeError):
    """A lab operation failed; the message says what and why."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    os: str
    groups: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """`NAME:OS[:GROUP,GROUP]`, as molecule platforms pass them."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not NAME_RE.match(parts[0]):
            raise LabError(f"bad node spec {text!r}: expected NAME:OS[:GROUP,...]")
        groups = tuple(g for g in parts[2].split(",") if g) if len(parts) == 3 else ("k3s_servers",)
        return cls(parts[0], parts[1], groups)


@dataclass
class Node:
    name: str
    os: str
    ip: str
    container: str
    groups: list[str] = field(default_factory=list)


@dataclass
class Lab:
    name: str
    network: str
    subnet: str
    gateway: str
    nodes: list[Node]

    @property
    def directory(self) -> Path:
        return lab_dir(self.name)

    @property
    def inventory(self) -> Path:
        return self.directory / "hosts.yml"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"lab {self.name!r} has no node {name!r}; nodes: {self.node_names()}")

    def node_names(self) -> str:
        return ", ".join(n.name for n in self.nodes)

    def to_json(self) -> str:
        data = asdict(self)
        data["inventory"] = str(self.inventory)
        data["ssh_key"] = str(sshkeys.key_path())
        data["user"] = image.LAB_USER
        return json.dumps(data, indent=2)


def default_specs(count: int, os_key: str) -> list[NodeSpec]:
    """node1..nodeN: the first three are k3s servers (one when N < 3), the rest agents."""
    if count < 1:
        raise LabError("a lab needs at least one node")
    servers = 3 if count >= 3 else 1
    return [
        NodeSpec(f"node{i}", os_key, ("k3s_servers",) if i <= servers else ("k3s_agents",))
        for i in range(1, count + 1)
    ]


def lab_dir(name: str) -> Path:
    return state_dir() / "labs" / name


def load(name: str) -> Lab:
    path = lab_dir(name) / "lab.json"
    if not path.exists():
        raise LabError(f"no lab named {name!r} is up (opsbook lab up --name {name})")
    data = json.loads(path.read_text())
    nodes = [Node(**n) for n in data.pop("nodes")]
    for key in ("inventory", "ssh_key", "user"):
        data.pop(key, None)
    return Lab(nodes=nodes, **data)


def up(name: str, specs: Sequence[NodeSpec], log: Log = print) -> Lab:
    """Create (or reuse) the lab `name` with exactly these nodes, and wait until SSH answers."""
    if not NAME_RE.match(name):
        raise LabError(f"bad lab name {name!r}: lowercase letters, digits and dashes")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise LabError(f"duplicate node names in {names}")
    images = {s.os: image.ensure_image(s.os, log) for s in specs}
    key = sshkeys.ensure_key()
    try:
        hostlimits.ensure_inotify(log)
    except hostlimits.HostLimitError as exc:
        raise LabError(str(exc)) from exc
    with _lock():
        network, subnet, gateway = _ensure_network(name)
        hosts = list(ipaddress.ip_network(subnet).hosts())
        nodes = []
        for index, spec in enumerate(specs):
            container = f"opsbook-{name}-{spec.name}"
            ip = str(hosts[FIRST_HOST - 1 + index])
            nodes.append(Node(spec.name, spec.os, ip, container, list(spec.groups)))
            _ensure_container(name, network, container, spec, ip, images[spec.os])
    lab = Lab(name, network, subnet, gateway, nodes)
    for node in nodes:
        _install_key(node.container, key)
    for node in nodes:
        wait_for_ssh(node.ip, 22, SSH_WAIT_SECONDS)
    lab.directory.mkdir(parents=True, exist_ok=True)
    _ensure_origin_certificate(lab.directory)
    (lab.directory / "lab.json").write_text(lab.to_json())
    write_inventory(lab.inventory, lab, key)
    log(f"lab {name}: {len(nodes)} node(s) up, inventory {lab.inventory}")
    return lab


def _lab_containers(name: str) -> list[str]:
    return podman(
        "ps", "-a", "--filter", f"label={LABEL}={name}", "--format", "{{.Names}}"
    ).stdout.split()


def _remove_containers(name: str, containers: list[str]) -> None:
    """`podman rm -f`, once more for what is left when the first try fails.

    podman can lose a race with a container that stops by itself while it is being killed
    ("sending SIGKILL ... container state improper: stopped"); the container is stopped
    then, and a second `rm` removes it. A second failure is raised.
    """
    first = podman("rm", "-f", "-t", "2", *containers, timeout=120, check=False)
    if first.returncode == 0:
        return
    left = _lab_containers(name)
    if left:
        podman("rm", "-f", "-t", "2", *left, timeout=120)


def down(name: str, log: Log = print) -> None:
    """Remove every container and the network of lab `name`, and its state directory."""
    containers = _lab_containers(name)
    if containers:
        _remove_containers(name, containers)
    podman("network", "rm", "-f", f"opsbook-{name}", check=False)
    directory = lab_dir(name)
    if directory.exists():
        for path in sorted(directory.rglob("*"), reverse=True):
            path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
        directory.rmdir()
    log(f"lab {name}: removed {len(containers)} container(s)")


def status(name: str) -> list[dict[str, str]]:
    """One row per node: container state, address and which SSH port answers."""
    lab = load(name)
    rows = []
    for node in lab.nodes:
        state = podman(
            "inspect", "--format", "{{.State.Status}}", node.container, check=False
        ).stdout.strip()
        port = answering_ssh_port(node.ip)
        rows.append(
            {
                "node": node.name,
                "os": node.os,
                "ip": node.ip,
                "container": state or "missing",
                "ssh": str(port) if port else "no answer",
                "groups": ",".join(node.groups),
            }
        )
    return rows


def answering_ssh_port(ip: str, ports: Sequence[int] = (2222, 22)) -> int | None:
    """The first of `ports` where an SSH server greets us (ports the ssh role may have moved to).

    The port that answered last time is tried first: a port the firewall drops costs a full
    connect timeout, and lab helpers ask this for every command they run on a node.
    """
    remembered = _ANSWERED.get(ip)
    order = [p for p in ports if p == remembered] + [p for p in ports if p != remembered]
    for port in order:
        if _ssh_banner(ip, port):
            _ANSWERED[ip] = port
            return port
    return None


def ssh_command(lab: Lab, node_name: str, command: Sequence[str] = ()) -> list[str]:
    node = lab.node(node_name)
    port = answering_ssh_port(node.ip)
    if port is None:
        raise LabError(f"{node_name} ({node.ip}) answers SSH on no known port")
    return ["ssh", *sshkeys.ssh_base_args(port), f"{image.LAB_USER}@{node.ip}", *command]


def run(
    lab: Lab,
    node_name: str,
    script: str,
    *,
    sudo: bool = False,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run shell text `script` on a node over SSH as the lab user (as root with `sudo`), with
    stdin closed and the output captured; `check` raises LabError naming the node, the
    script and its output when it exits non-zero."""
    remote = f"sudo -n sh -c {shlex.quote(script)}" if sudo else script
    proc = subprocess.run(
        ssh_command(lab, node_name, [remote]),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"{node_name}: {script!r} exited {proc.returncode}: {proc.stderr}{proc.stdout}"[:4000]
        )
    return proc


def scp_command(lab: Lab, node_name: str, files: Sequence[Path], remote_dir: str) -> list[str]:
    """scp of local files into remote_dir on a node, as the lab user with the lab key."""
    node = lab.node(node_name)
    port = answering_ssh_port(node.ip)
    if port is None:
        raise LabError(f"{node_name} ({node.ip}) answers SSH on no known port")
    args = sshkeys.ssh_base_args(port)
    args[args.index("-p")] = "-P"  # scp spells the port option -P
    return ["scp", "-q", *args, *map(str, files), f"{image.LAB_USER}@{node.ip}:{remote_dir}"]


def wait_for_ssh(ip: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["ssh", *sshkeys.ssh_base_args(port), f"{image.LAB_USER}@{ip}", "true"],
            capture_output=True,
            text=True,
            check=False,
            # ssh sets O_NONBLOCK on an inherited stdin, which later breaks ansible-playbook.
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode == 0:
            return
        last = proc.stderr.strip()
        time.sleep(1)
    raise LabError(f"SSH to {ip}:{port} did not answer within {timeout:.0f}s: {last}")


def _ssh_banner(ip: str, port: int) -> bool:
    try:
        # Lab nodes sit on a local bridge: a port that does not answer in 0.5 s is dropped.
        with socket.create_connection((ip, port), timeout=0.5) as sock:
            sock.settimeout(3)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@contextmanager
def _lock() -> Iterator[None]:
    path = state_dir() / "labs.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_network(name: str) -> tuple[str, str, str]:
    network = f"opsbook-{name}"
    found = podman("network", "inspect", network, check=False)
    if found.returncode == 0:
        subnet = json.loads(found.stdout)[0]["subnets"][0]
        return network, subnet["subnet"], subnet["gateway"]
    used = _used_subnets()
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(
        SUBNET_POOL.subnets(new_prefix=24)
    )
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(subnets)
    for offset in range(len(subnets)):
        candidate = subnets[(start + offset) % len(subnets)]
        if not any(candidate.overlaps(u) for u in used):
            break
    else:
        raise LabError("no free /24 left in 10.123.0.0/16 for a lab network")
    gateway = str(next(candidate.hosts()))
    podman(
        "network",
        "create",
        "--subnet",
        str(candidate),
        "--gateway",
        gateway,
        "--label",
        f"{LABEL}={name}",
        network,
    )
    return network, str(candidate), gateway


def _used_subnets() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    names = podman("network", "ls", "--format", "{{.Name}}").stdout.split()
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for net in names:
        info = podman("network", "inspect", net, check=False)
        if info.returncode != 0:
            continue
        for sub in json.loads(info.stdout)[0].get("subnets") or []:
            used.append(ipaddress.ip_network(sub["subnet"], strict=False))
    for line in subprocess.run(
        ["ip", "-o", "route"], capture_output=True, text=True, check=False
    ).stdout.splitlines():
        dest = line.split()[0]
        if "/" in dest:
            used.append(ipaddress.ip_network(dest, strict=False))
    return used


def _ensure_container(
    lab: str, network: str, container: str, spec: NodeSpec, ip: str, image_ref: str
) -> None:
    state = podman("inspect", "--format", "{{.State.Status}}", container, check=False)
    if state.returncode == 0:
        if state.stdout.strip() != "running":
            podman("start", container)
        return
    try:
        podman(
            "run",
            "-d",
            "--name",
            container,
            "--hostname",
            spec.name,
            "--network",
            network,
            "--ip",
            ip,
            "--privileged",
            "--systemd=always",
            "--label",
            f"{LABEL}={lab}",
            "--label",
            f"opsbook.node={spec.name}",
            image_ref,
            "/sbin/init",
        )
    except PodmanError as exc:
        raise LabError(f"could not start {container}: {exc}") from exc


def _ensure_origin_certificate(directory: Path) -> None:
    """A throwaway stand-in for the Cloudflare origin certificate (origin.crt/.key), so the
    apps' TLS Secret can be created in the lab (inventory/lab/group_vars reads it)."""
    if (directory / "origin.crt").exists():
        return
    ca = pki.CA(directory / "origin-ca", common_name="opsbook lab origin CA")
    ca.issue(
        "origin",
        "*.myhoneydue.com",
        dns=["*.myhoneydue.com", "myhoneydue.com"],
        server=True,
        directory=directory,
    )


def _install_key(container: str, key: Path) -> None:
    """Bootstrap only: put the lab's public key in place (every later step uses real SSH)."""
    pub = Path(str(key) + ".pub").read_text()
    user = image.LAB_USER
    state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container)
    status, _, code = state.stdout.strip().partition(" ")
    if status != "running":
        raise LabError(
            f"{container} is {status} (exit code {code}) right after starting; "
            f"`podman logs {container}` may say why"
        )
    podman(
        "exec",
        "-i",
        container,
        "sh",
        "-c",
        f"umask 077; cat > /home/{user}/.ssh/authorized_keys; "
        f"chown {user}:{user} /home/{user}/.ssh/authorized_keys",
        input_text=pub,
    )
