"""Start the Streamlit app on a free localhost port and wait until it answers.

Shared by the browser tests (tests/test_browser.py) and the benchmarks that
drive the app (bench/load.py, bench/cold_start.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> bool:
    """True once `url`'s health check answers; False after `timeout` seconds or if `server` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return True
        except OSError:
            time.sleep(0.2)
    return False


def start_app(env: dict[str, str], timeout: float = 120, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """The app (`python -m ui.serve app.py`, i.e. `streamlit run app.py`) on a free port with `env` (KB_INDEX, KB_CORPUS, ...); (process, url).

    Args:
        log: A file for the server's console (stdout and stderr); by default it is discarded.

    Raises:
        RuntimeError: The app did not answer within `timeout` seconds (the process is killed).
    """
    port = free_port()
    console = open(log, "wb") if log is not None else subprocess.DEVNULL
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ui.serve",  # streamlit run, with long links allowed
            "app.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=console,
        stderr=subprocess.STDOUT,
    )
    if log is not None:
        console.close()
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url, server, timeout):
        server.kill()
        raise RuntimeError(f"the app did not start within {timeout:.0f} s")
    return server, url
