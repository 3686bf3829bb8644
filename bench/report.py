"""Shared by the benchmark scripts: print a table and record it in bench/RESULTS.md.

Each script owns one section of RESULTS.md (replaced on every run), headed by
the command that reproduces it, the machine and the date.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def interleaved(contenders: Mapping[str, Callable], items: Sequence, rounds: int = 2) -> dict[str, list[float]]:
    """Seconds each contender took on each item, the contenders taking turns item by item.

    A busy machine then slows all of them alike. The first round warms
    caches and is not kept.
    """
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        for item in items:
            for name, run in contenders.items():
                start = time.perf_counter()
                run(item)
                if round_:
                    seconds[name].append(time.perf_counter() - start)
    return seconds


def record(name: str, body: str) -> None:
    """Print `body` and store it as section `name` of RESULTS.md."""
    command = "python " + " ".join([_script(), *sys.argv[1:]])
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {name}\n\n`{command}` on {machine()}, {stamp}\n\n{body}\n"
    print(section)
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


def _script() -> str:
    """How this run was started: `-m bench.x` for a module, else the script's path within the repository."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"-m {spec.name}"
    path = Path(sys.argv[0]).resolve()
    root = RESULTS.parent.parent
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
