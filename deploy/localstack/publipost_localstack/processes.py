"""Start, find and stop the background processes of the local stack; each has a pid file and a log."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer on {host}:{port} within {timeout:.0f}s")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_base(count: int) -> int:
    """A base whose next `count` ports nobody answers on, below the range the system hands out at random."""
    while True:
        base = random.randrange(20000, 30000, 10)
        if not any(port_open("127.0.0.1", base + n) for n in range(1, count + 1)):
            return base


@dataclass(frozen=True)
class Background:
    """A process of the stack, known by the pid file it leaves in the run folder."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        try:  # a child of this process that exited stays a zombie until reaped
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        except ChildProcessError:
            pass
        return pid

    def start(self, command: list[str], env: dict[str, str] | None = None) -> int:
        if (pid := self.pid()) is not None:
            return pid
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # a Ctrl-C in the terminal does not reach the stack
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def stop(self, timeout: float = 40.0) -> bool:
        """SIGTERM, wait for a clean exit, SIGKILL after `timeout`. False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def start_secantus(port: int, storage: Path, run_dir: Path, name: str = "secantusdb") -> Background:
    """SecantusDB, the MongoDB-compatible server from PyPI: the embedded default when no MONGODB_URL is given.

    Standalone: as a one-node replica set it also writes every change to an oplog (each blob chunk a
    second time), which only change streams and transactions need, and Publipost uses neither.
    """
    storage.mkdir(parents=True, exist_ok=True)
    process = Background(name, run_dir)
    binary = Path(sys.executable).with_name("secantusd-py")
    command = [str(binary), "--standalone", "--host", "127.0.0.1", "--port", str(port)]
    process.start([*command, "--storage-path", str(storage)])
    wait_for_port("127.0.0.1", port, 60, "SecantusDB")
    return process


def ensure_rabbitmq(url: str, timeout: float = 90.0) -> None:
    """Use the RabbitMQ at `url` if it answers; else start (and if need be install) the local server."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    if port_open(host, port):
        return
    if host not in ("127.0.0.1", "localhost"):
        raise RuntimeError(f"RabbitMQ at {host}:{port} does not answer; start it or set RABBITMQ_URL")
    if shutil.which("rabbitmq-server") is None and Path("/usr/sbin/rabbitmq-server").exists() is False:
        if os.geteuid() != 0:
            raise RuntimeError("rabbitmq-server is not installed; install it (apt-get install rabbitmq-server)")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "rabbitmq-server"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    server = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
    subprocess.run([server, "-detached"], check=False)
    wait_for_port(host, port, timeout, "RabbitMQ")
