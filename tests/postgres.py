"""A real PostgreSQL server for the tests: initialized in a temporary folder, on 127.0.0.1, password login only."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "synthaug"
PASSWORD = "s3cret-team-pw"  # the tests check that it appears in no output, log or MLflow param


def server_binaries() -> Path:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")


@dataclass(frozen=True)
class Postgres:
    port: int

    def url(self, database: str) -> str:
        """A SQLAlchemy URL without the password: that comes from PGPASSWORD, as it would on a team's machines."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": PASSWORD}

    def create_database(self, name: str) -> None:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                "postgres",
                "-c",
                f"CREATE DATABASE {name}",
            ],
            env={**os.environ, **self.env()},
            check=True,
            capture_output=True,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server(folder: Path) -> Iterator[Postgres]:
    """initdb with scram-sha-256 on TCP, then pg_ctl start; stopped and removed on leaving. The server refuses to
    run as root, so under root it runs as the `postgres` account the Debian package creates."""
    binaries = server_binaries()
    data, password_file = folder / "data", folder / "password"
    folder.mkdir(parents=True, exist_ok=True)
    password_file.write_text(PASSWORD)
    demote = None
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        shutil.chown(folder, account.pw_uid, account.pw_gid)
        shutil.chown(password_file, account.pw_uid, account.pw_gid)

        def demote() -> None:
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

    def run(*command: str) -> None:
        result = subprocess.run(command, preexec_fn=demote, capture_output=True, text=True, cwd=folder)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"

    port = free_port()
    run(
        str(binaries / "initdb"),
        "-D",
        str(data),
        "-U",
        USER,
        f"--pwfile={password_file}",
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c max_connections=200"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        yield Postgres(port)
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
