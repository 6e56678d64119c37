"""The role's origin patterns allow exactly the security archives of Debian 12/13 and Ubuntu
22.04/24.04, as apt reads them.

The role's apt.conf.d file is rendered for each distribution, read by the real `apt-config`
after a copy of the packaged 50unattended-upgrades defaults (so `#clear` is tested too), and the
resulting Origins-Pattern / Allowed-Origins are matched against the Release-file fields of each
archive of that release, with unattended-upgrades' own matching rules. Debian is also checked in
the lab (molecule verify: `unattended-upgrade --dry-run --debug`); Ubuntu only here, because the
Ubuntu archive is not reachable from the lab.
"""

from __future__ import annotations

import fnmatch
import re
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from opsbook.paths import project_root
from role_templates import render_template

ROLE = project_root() / "roles" / "unattended_upgrades"

# apt-config comes with apt on the Debian controller; without it these tests fail, never skip.


@dataclass(frozen=True)
class Archive:
    """The fields of a Release file that unattended-upgrades matches on (apt-cache policy)."""

    origin: str  # o=
    archive: str  # a= (Suite)
    codename: str  # n=
    label: str  # l=
    component: str = "main"  # c=
    site: str = ""


@dataclass(frozen=True)
class Release:
    distro_id: str  # ${distro_id}
    codename: str  # ${distro_codename}
    security: tuple[Archive, ...]
    other: tuple[Archive, ...]


def _debian(codename: str, suite: str) -> Release:
    return Release(
        "Debian",
        codename,
        security=(
            Archive("Debian", f"{suite}-security", f"{codename}-security", "Debian-Security"),
        ),
        other=(
            Archive("Debian", suite, codename, "Debian"),
            Archive("Debian", f"{suite}-updates", f"{codename}-updates", "Debian"),
            Archive(
                "Debian", f"{suite}-proposed-updates", f"{codename}-proposed-updates", "Debian"
            ),
            Archive(
                "Debian Backports",
                f"{codename}-backports",
                f"{codename}-backports",
                "Debian Backports",
            ),
        ),
    )


def _ubuntu(codename: str) -> Release:
    # Ubuntu's Release files: Codename is the bare release for every pocket, the pocket is in
    # Suite (archive). The ESM pockets exist on Ubuntu Pro hosts only.
    return Release(
        "Ubuntu",
        codename,
        security=(
            Archive("Ubuntu", f"{codename}-security", codename, "Ubuntu"),
            Archive("UbuntuESMApps", f"{codename}-apps-security", codename, "Ubuntu ESM Apps"),
            Archive("UbuntuESM", f"{codename}-infra-security", codename, "Ubuntu ESM"),
        ),
        other=(
            Archive("Ubuntu", codename, codename, "Ubuntu"),
            Archive("Ubuntu", f"{codename}-updates", codename, "Ubuntu"),
            Archive("Ubuntu", f"{codename}-backports", codename, "Ubuntu"),
            Archive("Ubuntu", f"{codename}-proposed", codename, "Ubuntu"),
            Archive("UbuntuESMApps", f"{codename}-apps-updates", codename, "Ubuntu ESM Apps"),
            Archive("UbuntuESM", f"{codename}-infra-updates", codename, "Ubuntu ESM"),
        ),
    )


RELEASES = {
    "debian12": _debian("bookworm", "oldstable"),
    "debian13": _debian("trixie", "stable"),
    "ubuntu2204": _ubuntu("jammy"),
    "ubuntu2404": _ubuntu("noble"),
}

# What the packages ship in /etc/apt/apt.conf.d/50unattended-upgrades (abridged): more than
# security. The role's file must replace these lists, not add to them.
PACKAGED_DEFAULTS = {
    "Debian": """
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
};
Unattended-Upgrade::Package-Blacklist {
};
""",
    "Ubuntu": """
Unattended-Upgrade::Allowed-Origins {
        "${distro_id}:${distro_codename}";
        "${distro_id}:${distro_codename}-security";
        "${distro_id}ESMApps:${distro_codename}-apps-security";
        "${distro_id}ESM:${distro_codename}-infra-security";
};
Unattended-Upgrade::Package-Blacklist {
};
""",
}


def _substitute(text: str, release: Release) -> str:
    return string.Template(text).substitute(
        distro_id=release.distro_id, distro_codename=release.codename
    )


def _matches(pattern: str, archive: Archive, release: Release) -> bool:
    """unattended-upgrades' match_whitelist_string (2.9 in Debian 12, 2.12 in Debian 13)."""
    fields = {
        "o": archive.origin,
        "origin": archive.origin,
        "l": archive.label,
        "label": archive.label,
        "a": archive.archive,
        "suite": archive.archive,
        "archive": archive.archive,
        "c": archive.component,
        "component": archive.component,
        "site": archive.site,
        "n": archive.codename,
        "codename": archive.codename,
    }
    pattern = pattern.strip().replace("\\,", "%2C")
    if not pattern:
        return False
    for token in pattern.split(","):
        what, value = (part.strip().replace("%2C", ",") for part in token.split("="))
        if what not in fields:
            raise ValueError(f"unattended-upgrades rejects the matcher {what!r} in {pattern!r}")
        if not fnmatch.fnmatch(fields[what], _substitute(value, release)):
            return False
    return True


def _legacy_to_pattern(entry: str, release: Release) -> str:
    """Allowed-Origins "id:archive" as unattended-upgrades converts it (o=...,a=...)."""
    distro_id, archive = re.split(r"(?<!\\):", entry)
    return f"o={_substitute(distro_id, release)},a={_substitute(archive, release)}"


def _render(distribution: str) -> str:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    os_vars = yaml.safe_load((ROLE / "vars" / f"{distribution}.yml").read_text())
    return render_template(
        "unattended_upgrades",
        "52opsbook-unattended-upgrades.j2",
        {
            **defaults,
            **os_vars,
            "ansible_managed": "Ansible managed",
            "ansible_facts": {"distribution": distribution},
            "unattended_upgrades_reboot_slot": 0,
            "unattended_upgrades_is_server": True,
            "unattended_upgrades_reboot_enabled": False,
            "unattended_upgrades_reboot_at": "02:00",
        },
    )


def _apt_lists(tmp_path: Path, *files: str) -> dict[str, list[str]]:
    """Read the files with the real apt-config, in order; return the Unattended-Upgrade lists."""
    args = ["apt-config"]
    for index, text in enumerate(files):
        path = tmp_path / f"{index}.conf"
        path.write_text(text)
        args += ["-c", str(path)]
    dump = subprocess.run([*args, "dump"], capture_output=True, text=True, check=True).stdout
    lists: dict[str, list[str]] = {"Origins-Pattern": [], "Allowed-Origins": []}
    for line in dump.splitlines():
        match = re.match(r'^Unattended-Upgrade::([A-Za-z-]+):: "(.*)";$', line)
        if match and match.group(1) in lists:
            lists[match.group(1)].append(match.group(2))
    return lists


def _allowed(lists: dict[str, list[str]], release: Release) -> list[str]:
    """Every pattern unattended-upgrades would use (its get_allowed_origins)."""
    legacy = [_legacy_to_pattern(e, release) for e in lists["Allowed-Origins"]]
    return legacy + lists["Origins-Pattern"]


def _is_allowed(patterns: list[str], archive: Archive, release: Release) -> bool:
    return any(_matches(p, archive, release) for p in patterns)


@pytest.mark.parametrize("key", sorted(RELEASES))
def test_only_the_security_archives_are_allowed(key: str, tmp_path: Path) -> None:
    release = RELEASES[key]
    ours = _render(release.distro_id)
    lists = _apt_lists(tmp_path, PACKAGED_DEFAULTS[release.distro_id], ours)
    patterns = _allowed(lists, release)
    assert patterns, "apt-config read no origin pattern from the role's file"
    for archive in release.security:
        assert _is_allowed(patterns, archive, release), f"{key}: {archive} is not allowed"
    for archive in release.other:
        assert not _is_allowed(patterns, archive, release), f"{key}: {archive} is allowed"


@pytest.mark.parametrize("key", sorted(RELEASES))
def test_the_packaged_defaults_would_allow_more(key: str, tmp_path: Path) -> None:
    """Sanity check of the test itself: without the role's #clear, non-security archives pass."""
    release = RELEASES[key]
    patterns = _allowed(_apt_lists(tmp_path, PACKAGED_DEFAULTS[release.distro_id]), release)
    assert any(_is_allowed(patterns, a, release) for a in release.other)


@pytest.mark.parametrize("key", ["ubuntu2204", "ubuntu2404"])
def test_a_debian_style_pattern_matches_nothing_on_ubuntu(key: str) -> None:
    """The classic mistake: Ubuntu's security pocket has Codename jammy, not jammy-security."""
    release = RELEASES[key]
    wrong = ["origin=Ubuntu,codename=${distro_codename}-security,label=Ubuntu"]
    assert not any(_is_allowed(wrong, a, release) for a in release.security + release.other)


def test_the_role_file_clears_every_list_it_sets() -> None:
    text = (ROLE / "templates" / "52opsbook-unattended-upgrades.j2").read_text()
    set_lists = set(re.findall(r"^Unattended-Upgrade::([A-Za-z-]+) \{", text, re.MULTILINE))
    cleared = set(re.findall(r"^#clear Unattended-Upgrade::([A-Za-z-]+);", text, re.MULTILINE))
    assert set_lists <= cleared
    assert "Allowed-Origins" in cleared
