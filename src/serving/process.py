"""`ServerProcess`: `python -m src.serve` in a child process, for the tests, the benchmark and scripts.

with ServerProcess(["logs/quickstart/version_0/checkpoints/last.ckpt"]) as server:
    post_image(server.url, Path("photo.png").read_bytes(), "photo.png")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from src.serving.client import request

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """Start `python -m src.serve ARGS --port P` in a new process group; stop it and its workers on exit.

    Args:
        args: The command's arguments (the checkpoint first), without `--port`.
        port: The port (default: a free one).
        env: Environment variables to add.
        log: Where the server's output goes (default: discarded).
        startup_timeout: Seconds to wait for `GET /health` to answer 200.
    """

    def __init__(
        self,
        args: Sequence[str],
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self.args, self.port = [str(a) for a in args], port or free_port()
        self.env, self.log, self.startup_timeout = env or {}, log, startup_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        out = self.log.open("w") if self.log is not None else subprocess.DEVNULL
        command = [sys.executable, "-m", "src.serve", *self.args, "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with status {self.process.returncode}: {self.output()}"
                )
            try:
                if request(f"{self.url}/health", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"the server did not answer /health in {self.startup_timeout:g} s: {self.output()}"
        )

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def output(self) -> str:
        """The end of the server's log (when it has one)."""
        return self.log.read_text()[-3000:] if self.log is not None and self.log.exists() else "(no log)"

    def pids(self) -> list[int]:
        """The server's process and its descendants (Linux: read from /proc)."""
        if self.process is None:
            return []
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def memory_mb(self) -> float:
        """Resident memory of the server and its workers together, in MB (Linux)."""
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0
            )
        return total / 1024

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the whole process group; SIGKILL to what is left of it after `timeout` seconds."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers left behind, if any
        self.process.wait()
