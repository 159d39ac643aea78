"""Real servers for tests, on loopback ports: a private PostgreSQL 15 cluster and a moto S3 server.

Both are started from this project's code (no system services), live in a temp dir and are
stopped on exit. Run ``python -m bench.testing.services`` to start both by hand and print their URLs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

PG_BIN = Path(os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; on a root shell run them as the 'postgres' user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a fresh PostgreSQL cluster's ``postgres`` database (user ``bench``, trust auth)."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found in {PG_BIN}; apt-get install postgresql-15")
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    try:
        subprocess.run(_as_postgres_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "bench", "--auth=trust",
                                          "--encoding=UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                                          "-l", str(root / "server.log"), "start"]),
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://bench@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    """Yield the endpoint URL of a local moto S3 server."""
    port = free_port()
    executable = Path(sys.executable).with_name("moto_server")
    command = [str(executable) if executable.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {endpoint}")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0, log: Path | None = None) -> None:
    """Poll ``url`` until it answers; fail at once if the process that should serve it has exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                detail = log.read_text()[-3000:] if log and log.exists() else ""
                raise RuntimeError(f"nothing answered at {url}:\n{detail}")
            time.sleep(0.1)


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ApiServer:
    """A `bench serve api` process on a loopback port; ``kill()`` simulates a crash, ``start()`` restarts it."""

    def __init__(self, env: dict[str, str], port: int | None = None):
        self.env, self.port = env, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="bench-api-", suffix=".log")[1])

    def start(self, timeout: float = 60.0) -> "ApiServer":
        executable = Path(sys.executable).with_name("bench")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(executable), "serve", "api", "--port", str(self.port)], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_until_up(self.url + "/api/v1/health", self.process, timeout, self.log)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, as in a power cut."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)


class UiServer:
    """A `bench serve ui` process (Streamlit) on a loopback port, showing the API at ``api_url``."""

    def __init__(self, env: dict[str, str], api_url: str, port: int | None = None):
        self.env, self.api_url, self.port = env, api_url, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "UiServer":
        self.process = subprocess.Popen([sys.executable, "-m", "bench.cli", "serve", "ui", "--api", self.api_url,
                                         "--port", str(self.port)], env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until_up(self.url + "/_stcore/health", self.process, timeout)
        return self

    def stop(self) -> None:
        stop_process(self.process)


@contextlib.contextmanager
def api_server(env: dict[str, str]) -> Iterator[ApiServer]:
    """A running `bench serve api` with the given environment (BENCH_HOME, database, storage ...)."""
    server = ApiServer(env).start()
    try:
        yield server
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


def s3_env(endpoint: str) -> dict[str, str]:
    """Credentials and endpoint that boto3/s3fs need to talk to the local server."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BENCH_S3_ENDPOINT_URL": endpoint,
    }


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)


if __name__ == "__main__":  # pragma: no cover - manual use
    with postgres_server() as pg, moto_s3_server() as s3:
        print(f"BENCH_DATABASE_URL={pg}\nBENCH_S3_ENDPOINT_URL={s3}\n(ctrl-c to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
