"""A throw-away PostgreSQL cluster for the tests: Debian's initdb and pg_ctl in a temporary folder.

    python tests/pgserver.py start DIR    # prints the server's URL (a superuser with a password)
    python tests/pgserver.py stop DIR

The cluster listens on 127.0.0.1 at a free port and on a Unix socket in DIR; TCP connections need the
password (scram-sha-256), so the tests can try a wrong one. PostgreSQL refuses to run as root: as root,
the cluster runs as the `postgres` user Debian's package creates (or `nobody`). `conftest.py` starts one
per test session when no ``EVIDENCE_TEST_PG_URL`` is given and the binaries are installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

SUPERUSER = "evidence"
PASSWORD = "s3cret-test-pw"  # a throw-away cluster on loopback; the tests check it is never printed


def bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's layout (the newest version), or PATH."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(directory: Path, *, durable: bool = False) -> str:
    """Start a cluster in ``directory`` and return its superuser URL. Not ``durable`` (the default, for
    speed), it runs without fsync and with asynchronous commits: a crash (an immediate stop) may lose
    the last commits, so tests that stop the server on purpose ask for a durable one."""
    binaries = bin_dir()
    if binaries is None:
        raise RuntimeError("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    pwfile = directory / "pw"
    pwfile.write_text(PASSWORD + "\n")
    prefix = _run_as()
    if prefix:
        user = prefix[2]
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        # The folder may sit under a root-only temporary folder: the server needs to reach it.
        for parent in directory.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
    port = _free_port()
    subprocess.run(
        [
            *prefix,
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
        "-c max_connections=200 -c shared_buffers=64MB"
    )
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    (directory / "options").write_text(options)
    _pg_ctl_start(directory, options)
    (directory / "url").write_text(url(port))
    return url(port)


def _pg_ctl_start(directory: Path, options: str) -> None:
    binaries = bin_dir()
    assert binaries is not None
    command = [str(binaries / "pg_ctl"), "-D", str(directory / "data"), "-l", str(directory / "log")]
    subprocess.run([*_run_as(), *command, "-o", options, "-w", "start"], check=True, capture_output=True)


def url(port: int, database: str = "postgres") -> str:
    return f"postgresql+psycopg://{SUPERUSER}:{PASSWORD}@127.0.0.1:{port}/{database}"


def stop(directory: Path, mode: str = "fast") -> None:
    binaries = bin_dir()
    if binaries is None or not (directory / "data").exists():
        return
    subprocess.run(
        [*_run_as(), str(binaries / "pg_ctl"), "-D", str(directory / "data"), "-m", mode, "-w", "stop"],
        check=False,
        capture_output=True,
    )


def restart(directory: Path) -> None:
    """Start a stopped cluster again, on the same port and with the same options."""
    _pg_ctl_start(directory, (directory / "options").read_text())


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    if command == "start":
        print(start(folder))
    elif command == "stop":
        stop(folder)
    else:
        raise SystemExit(f"usage: {sys.argv[0]} start|stop DIR")
