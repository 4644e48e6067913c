"""Facts about the machine a benchmark ran on: CPU, cores, OS, Python, runtime, memory, heat.

Everything here reads the standard library and Linux ``/proc`` and ``/sys`` files, so it runs
on a Raspberry Pi, an x86 box or Android; a fact that cannot be read is ``None``, never guessed.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite import __version__
from affectlite.edge_app.runtime import RuntimeUnavailable, runtime_info

_CPUINFO = Path("/proc/cpuinfo")
_BOARD = Path("/proc/device-tree/model")
_CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")
_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's name: ``model name`` from ``/proc/cpuinfo`` (x86), else the board model
    (Raspberry Pi: ``Raspberry Pi 4 Model B Rev 1.4``), else what ``platform`` knows."""
    text = _read(_CPUINFO) or ""
    for key in ("model name", "Model", "Hardware"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return _read(_BOARD) or platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_temperature_c() -> float | None:
    """SoC temperature in °C from the first thermal zone (Raspberry Pi, most ARM boards)."""
    value = _read(_THERMAL)
    try:
        return round(int(value) / 1000.0, 1) if value else None
    except ValueError:
        return None


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (other work competing for the CPU)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def host_name() -> str:
    """This machine's short host name, safe for a folder name."""
    name = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def host_facts() -> dict[str, Any]:
    """Everything needed to compare two benchmark runs fairly, as a JSON-ready dict."""
    try:
        runtime = runtime_info()
        runtime_fact = {"name": runtime.name, "version": runtime.version}
    except RuntimeUnavailable as error:
        runtime_fact = {"name": None, "version": None, "error": str(error)}
    freq = _read(_CPUFREQ / "cpuinfo_max_freq")
    return {
        "host": host_name(),
        "cpu_model": cpu_model(),
        "board": _read(_BOARD),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_max_mhz": round(int(freq) / 1000) if freq and freq.isdigit() else None,
        "cpu_governor": _read(_CPUFREQ / "scaling_governor"),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "runtime": runtime_fact,
        "kit_version": __version__,
        "total_memory_bytes": _total_memory(),
    }


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
