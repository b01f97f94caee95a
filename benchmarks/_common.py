"""Helpers shared by the benchmark scripts: machine description, peak memory, RESULTS.md sections."""

from __future__ import annotations

import platform
import resource
from pathlib import Path

from vocoder.checkpoint import atomic_path


def max_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def publish(section: str, text: str, write: bool = True) -> None:
    """Print a report and, unless `write` is False (--no-write), make it its section of RESULTS.md."""
    print(text)
    if write:
        write_section(Path(__file__).resolve().parent / "RESULTS.md", section, text)


def write_section(path: Path, section: str, text: str) -> None:
    """Replace (or append) the `section` heading's part of RESULTS.md, leaving the other sections alone."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == section), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    with atomic_path(path) as tmp:
        tmp.write_text(new)
