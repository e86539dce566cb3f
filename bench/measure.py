"""What the benchmarks measure around the stack: an SMTP server that accepts as fast as it reads (Postfix's
smtp-sink), and the CPU time and memory of the stack's processes, LibreOffice included."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from publipost_localstack.processes import free_port, start_secantus, wait_for_port

SMTP_SINK = Path("/usr/sbin/smtp-sink")


def ensure_smtp_sink() -> None:
    if SMTP_SINK.exists():
        return
    # "No configuration": the package brings its tools without setting up a mail server.
    subprocess.run(
        ["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n", check=True
    )
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "postfix"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


@contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's smtp-sink on a free port: it accepts every message as fast as it reads it."""
    ensure_smtp_sink()
    port = free_port()
    # smtp-sink drops root for the postfix user the package created.
    user = ["-u", "postfix"] if os.geteuid() == 0 else []
    sink = subprocess.Popen([str(SMTP_SINK), *user, f"127.0.0.1:{port}", "1024"])
    try:
        wait_for_port("127.0.0.1", port, 10, "smtp-sink")
        yield port
    finally:
        sink.terminate()
        sink.wait()


@dataclass
class Usage:
    """What each process spent over one mailing: CPU seconds, peak and final resident memory (MB)."""

    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    rss_mb: dict[str, float]


@dataclass
class ProcessWatch:
    """CPU seconds and peak resident memory of the stack's processes over one mailing.

    LibreOffice is render-pdf's children (the bridge process and soffice under it), which render-pdf
    renews after so many runs: its CPU is that of the living ones plus what the exited ones left in
    their parents' counts, its memory the peak of the living soffice. Figures are taken at stop(): the
    next mailing's start() resets the peaks.
    """

    pids: dict[str, int]
    cpu_before: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        for pid in [*self.pids.values(), *descendants(self.pids["render-pdf"])]:
            reset_peak_rss(pid)
        self.cpu_before = self._cpu_now()

    def stop(self) -> Usage:
        spent = {name: round(seconds - self.cpu_before[name], 2) for name, seconds in self._cpu_now().items()}
        return Usage(spent, self._memory("VmHWM"), self._memory("VmRSS"))

    def _cpu_now(self) -> dict[str, float]:
        spent = {name: sum(cpu_ticks(pid)[:2]) for name, pid in self.pids.items()}
        render = self.pids["render-pdf"]
        spent["libreoffice"] = sum(cpu_ticks(render)[2:]) + sum(sum(cpu_ticks(pid)) for pid in descendants(render))
        return {name: ticks / os.sysconf("SC_CLK_TCK") for name, ticks in spent.items()}

    def _memory(self, field: str) -> dict[str, float]:
        kb = {name: status_kb(pid, field) for name, pid in self.pids.items()}
        kb["libreoffice"] = max((status_kb(pid, field) for pid in descendants(self.pids["render-pdf"])), default=0)
        return {name: round(value / 1024, 1) for name, value in kb.items()}


@contextmanager
def secantus(folder: Path) -> Iterator[str]:
    """A SecantusDB of the benchmark's own, its data in `folder`: its MongoDB URL."""
    port = free_port()
    database = start_secantus(port, folder / "data", folder, name=f"secantus-bench-{port}")
    try:
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        database.stop()


def cpu_ticks(pid: int) -> list[int]:
    """utime, stime, and the same of its children that exited and were waited for; zeros once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return [0, 0, 0, 0]
    return [int(f) for f in fields[11:15]]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    return sum(cpu_ticks(pid)[:2]) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status: VmHWM (peak resident) or VmRSS (resident now); 0 once gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def reset_peak_rss(pid: int) -> None:
    """Start the peak resident size (VmHWM) again from now: each mailing's peak is its own."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass  # not ours to reset: the peak then covers the process's whole life


def descendants(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True).stdout.split()
    return [d for child in map(int, found) for d in (child, *descendants(child))]


def rabbitmq_pid() -> int | None:
    found = subprocess.run(
        ["pgrep", "-f", "beam.smp.*rabbit"], check=False, capture_output=True, text=True
    ).stdout.split()
    return int(found[0]) if found else None


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
