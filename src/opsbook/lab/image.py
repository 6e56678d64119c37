"""Build the lab's Debian node images locally (no registry): debootstrap, then `podman import`.

The image is tagged by a hash of its recipe and reused while the recipe is unchanged.
Packages the roles install (ufw, fail2ban, ...) are downloaded into the image's apt cache but
not installed, so a converge installs them for real without waiting on the network.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsbook.lab.podman import podman, podman_env

IMAGE_REPO = "localhost/opsbook-node"
RECIPE_VERSION = 1
LAB_USER = "opsbook"


@dataclass(frozen=True)
class OsRelease:
    key: str
    suite: str


OS_RELEASES: dict[str, OsRelease] = {
    "debian12": OsRelease("debian12", "bookworm"),
    "debian13": OsRelease("debian13", "trixie"),
}

# Installed by debootstrap: what a fresh cloud server has.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "openssh-server",
    "iproute2",
    "sudo",
    "ca-certificates",
    "procps",
    "kmod",
)

# Downloaded into /var/cache/apt/archives only: the roles install them.
ROLE_PACKAGES = (
    "ufw",
    "fail2ban",
    "python3-systemd",
    "unattended-upgrades",
    "apt-listchanges",
)

# Units that make no sense in a container and only turn `is-system-running` degraded.
MASKED_UNITS = (
    "getty@tty1.service",
    "console-getty.service",
    "systemd-modules-load.service",
    "systemd-firstboot.service",
)


class ImageError(RuntimeError):
    """The node image could not be built."""


def recipe_hash(release: OsRelease) -> str:
    recipe = {
        "version": RECIPE_VERSION,
        "suite": release.suite,
        "base": BASE_PACKAGES,
        "role": ROLE_PACKAGES,
        "masked": MASKED_UNITS,
        "user": LAB_USER,
        "setup": _SETUP_SCRIPT,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def image_ref(os_key: str) -> str:
    release = _release(os_key)
    return f"{IMAGE_REPO}:{release.key}-{recipe_hash(release)}"


def alias_ref(os_key: str) -> str:
    """A stable tag (`localhost/opsbook-node:debian12`) pointing at the current recipe's image."""
    return f"{IMAGE_REPO}:{_release(os_key).key}"


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def ensure_image(os_key: str, log: Callable[[str], None] = print) -> str:
    """Return the image reference for `os_key`, building it first when it is not cached."""
    ref = image_ref(os_key)
    if not image_exists(ref):
        log(f"building lab image {ref} (debootstrap, about 2 minutes)")
        _build(_release(os_key), ref)
    podman("tag", ref, alias_ref(os_key))
    return ref


def host_mirrors(sources: list[Path] | None = None) -> tuple[str, str]:
    """The Debian and Debian-security mirrors the host's own apt sources use."""
    if sources is None:
        sources = [
            Path("/etc/apt/sources.list"),
            *sorted(Path("/etc/apt/sources.list.d").glob("*")),
        ]
    uris: list[str] = []
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        uris += re.findall(r"^\s*URIs:\s*(\S+)", text, flags=re.MULTILINE)
        uris += re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.MULTILINE)
    uris = [u.rstrip("/") for u in uris if u.startswith(("http://", "https://"))]
    main = next((u for u in uris if not u.endswith("-security")), "http://deb.debian.org/debian")
    security = next((u for u in uris if u.endswith("-security")), main + "-security")
    return main, security


def _release(os_key: str) -> OsRelease:
    try:
        return OS_RELEASES[os_key]
    except KeyError:
        raise ImageError(f"unknown OS {os_key!r}; choose one of {', '.join(OS_RELEASES)}") from None


# Runs inside the debootstrapped tree (chroot), with $SUITE, $MIRROR and $SECURITY set.
_SETUP_SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
cat > /etc/apt/sources.list <<EOS
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOS
apt-get update -qq
apt-get install -y -qq --download-only $ROLE_PACKAGES >/dev/null
useradd --create-home --shell /bin/bash --groups sudo "$LAB_USER"
usermod -p '*' "$LAB_USER"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$LAB_USER" > "/etc/sudoers.d/$LAB_USER"
chmod 0440 "/etc/sudoers.d/$LAB_USER"
install -d -m 0700 -o "$LAB_USER" -g "$LAB_USER" "/home/$LAB_USER/.ssh"
for unit in $MASKED_UNITS; do ln -sf /dev/null "/etc/systemd/system/$unit"; done
systemctl enable ssh.service >/dev/null 2>&1 || true
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
echo localhost > /etc/hostname
"""


def _build(release: OsRelease, ref: str) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
    mirror, security = host_mirrors()
    with tempfile.TemporaryDirectory(prefix="opsbook-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                release.suite,
                str(rootfs),
                mirror,
            ],
            "debootstrap",
        )
        env = {
            "SUITE": release.suite,
            "MIRROR": mirror,
            "SECURITY": security,
            "ROLE_PACKAGES": " ".join(ROLE_PACKAGES),
            "MASKED_UNITS": " ".join(MASKED_UNITS),
            "LAB_USER": LAB_USER,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
        _run(["chroot", str(rootfs), "/bin/sh", "-c", _SETUP_SCRIPT], "image setup", env=env)
        (rootfs / "etc/resolv.conf").unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            [
                "podman",
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "STOPSIGNAL SIGRTMIN+3",
                "-",
                ref,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            env=podman_env(),
            check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ImageError(f"podman import failed: {imported.stderr.strip()}")


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ImageError(f"{what} failed (exit {proc.returncode}):\n{tail}")
