"""Start `python -m index serve` on a free localhost port and wait until it is ready.

Shared by the API tests (tests/test_api.py, tests/test_serving.py) and the
serving benchmark (bench/serve.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.app_server import free_port

REPO = Path(__file__).resolve().parent.parent


def wait_ready(url: str, server: subprocess.Popen, timeout: float) -> bool:
    """True once `url`/readyz answers 200; False after `timeout` seconds or if `server` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def start_api(args: list[str], env: dict[str, str], log: Path, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """`python -m index serve ARGS --port <free>` with `env` added; (process, url) once /readyz says ready.

    The server runs in its own process group (uvicorn workers, Ray's driver), stopped by `stop_api`.

    Raises:
        RuntimeError: It did not become ready within `timeout` seconds (its log is in the message).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "index", "serve", *args, "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if not wait_ready(url, server, timeout):
        stop_api(server)
        raise RuntimeError(
            f"python -m index serve {' '.join(args)} was not ready in {timeout:.0f}s:\n{log.read_text()}"
        )
    return server, url


def session_processes(server: subprocess.Popen) -> dict[int, str]:
    """The processes the server started that still run (its session: uvicorn workers, Ray's daemons and replicas), pid -> title.

    A process that has exited but is not yet reaped by its parent (a zombie, with an
    empty command line) runs no more and is left out.
    """
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server.pid:
            continue
        try:
            if os.getsid(int(entry.name)) == server.pid and not _zombie(entry):
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found[int(entry.name)] = title
        except (OSError, ProcessLookupError):
            pass  # gone meanwhile
    return found


def _zombie(proc: Path) -> bool:
    """Whether /proc/PID is a process that has exited and waits to be reaped (state Z, or X while it goes)."""
    stat = (proc / "stat").read_text(errors="replace")
    return stat[stat.rindex(")") + 1 :].split()[0] in ("Z", "X")  # the name in (...) may hold spaces


def stop_api(server: subprocess.Popen, timeout: float = 60) -> None:
    """Interrupt the server (as Ctrl-C would), then kill whatever it started that is still running.

    Ray's workers run in process groups of their own, within the server's session:
    those left after the server exits are killed one by one, by pid. A killed process
    takes a moment to go: wait until `session_processes` is empty before judging what is left.
    """
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(10)
    for pid in session_processes(server):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
