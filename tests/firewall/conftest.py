"""Fixtures for the firewall tests (helpers live in firewall_helpers.py, importable here)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from firewall_helpers import load_module

from cloudflare_server import CfServer, cloudflare_server


@pytest.fixture(scope="session")
def cfmod() -> ModuleType:
    return load_module("firewall_cloudflare_ranges")


@pytest.fixture(scope="session")
def ufwmod() -> ModuleType:
    return load_module("firewall_ufw")


@pytest.fixture(scope="session")
def lockmod() -> ModuleType:
    return load_module("firewall_cloudflare_ranges")


@pytest.fixture
def cf_server() -> Iterator[CfServer]:
    with cloudflare_server() as server:
        yield server
