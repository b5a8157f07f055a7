"""What a run ran on: package versions, device and hardware, and when — recorded beside its results.

Training logs it as the first record of ``metrics.jsonl`` (``event: start``) and eval writes it into
``metrics.json``, so a number in a report can be traced to the software and machine that produced it.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

# The distributions whose versions change fercurate's numbers (decoding, resizing, models, tables).
PACKAGES: tuple[str, ...] = ("fercurate", "torch", "numpy", "pyarrow", "pandas", "opencv-python-headless",
                             "ai-edge-litert", "dlib-bin", "scikit-image", "pillow", "onnxruntime")


def now_utc() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` for the installed ones among ``names``, plus Python itself."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: Any = None) -> dict[str, Any]:
    """The device a run used (``cpu``, ``cuda:0``) with its name, and the host's CPU and core count."""
    dev = str(device) if device is not None else "cpu"
    info: dict[str, Any] = {"device": dev, "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                            "platform": platform.platform()}
    torch = sys.modules.get("torch")  # only when the run uses it: recording never imports torch
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if dev.startswith("cuda") and torch.cuda.is_available():
            index = int(dev.split(":", 1)[1]) if ":" in dev else torch.cuda.current_device()
            info["gpu"] = torch.cuda.get_device_name(index)
    return info


def environment(device: Any = None) -> dict[str, Any]:
    """Versions and hardware in one dict, for ``metrics.jsonl`` / ``metrics.json``."""
    return {"packages": package_versions(), **hardware(device)}
