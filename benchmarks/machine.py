"""The facts about this machine that a benchmark figure depends on: CPU, cores, load, versions.

Printed and saved with every ``telepresence bench`` result, so a figure read later (or on
another laptop) says what it was measured on.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from typing import Any

# Distribution names, in the order they are shown; OpenCV comes from mediapipe's
# opencv-contrib-python (DESIGN.md, "Dependencies"), but any of the four provides cv2.
PACKAGES = ("aiortc", "av", "numpy", "matplotlib", "mediapipe")
OPENCV_DISTRIBUTIONS = (
    "opencv-contrib-python",
    "opencv-python",
    "opencv-contrib-python-headless",
    "opencv-python-headless",
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            cpuinfo = ""
    match = re.search(r"^(?:model name|Hardware|cpu model)\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or "unknown")


def load_average() -> list[float]:
    """``uptime``'s 1, 5 and 15 minute load averages (the machine is shared: say how busy it was)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def browser_version() -> str | None:
    """``chromium --version`` when a Chromium is installed, else None (the browser suite needs one)."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            done = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        # Debian's wrapper script may print shell noise on stderr; the version line is on stdout.
        line = next((text for text in done.stdout.splitlines() if text.strip()), "")
        if line:
            return line.strip()
    return None


def machine_facts() -> dict[str, Any]:
    """CPU model, cores (all, and usable by this process), load, OS, Python and package versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    versions = {name: _version(name) for name in PACKAGES}
    opencv = next(((d, v) for d in OPENCV_DISTRIBUTIONS if (v := _version(d))), None)
    versions["opencv"] = f"{opencv[1]} ({opencv[0]})" if opencv else None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "load_avg": load_average(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "chromium": browser_version(),
    }


def describe(facts: dict[str, Any]) -> list[str]:
    """The facts as short lines for a terminal."""
    versions = ", ".join(f"{name} {v}" for name, v in facts["versions"].items() if v)
    load = " / ".join(f"{value:g}" for value in facts["load_avg"]) or "unknown"
    return [
        f"CPU: {facts['cpu_model']}, {facts['cores']} cores ({facts['cores_usable']} usable)",
        f"load (1/5/15 min): {load}",
        f"{facts['os']}, Python {facts['python']}",
        f"packages: {versions}",
        f"browser: {facts['chromium'] or 'no Chromium found'}",
    ]
