"""Environment manifest captured with every run (pyperf-style metadata).

CPU model and GPUs come from :mod:`harness.measure.host`, the one host detection.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from harness.measure.host import cpu_model, detect_gpus

PACKAGES = (
    "inference-harness",
    "numpy",
    "torch",
    "onnxruntime",
    "onnx",
    "pandas",
    "pyarrow",
    "scipy",
    "pydantic",
    "nvidia-ml-py",
    "tensorrt",
    "mlcommons-loadgen",
    "streamlit",
)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(path: Path) -> dict[str, Any]:
    """Commit of the repository holding ``path`` and whether it has uncommitted changes."""
    cwd = path if path.is_dir() else path.parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return {}
    dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd))
    return {"commit": commit, "dirty": dirty}


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs and driver (:func:`harness.measure.host.detect_gpus`); empty where NVML is absent."""
    found, _ = detect_gpus()
    return [g.model_dump() for g in found]


def manifest(suite_path: Path | None = None) -> dict[str, Any]:
    """CPU, cores, memory, OS, Python, package versions, git commits, GPUs."""
    vm = psutil.virtual_memory()
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    freq = psutil.cpu_freq()
    env: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_max_mhz": freq.max if freq else None,
        "memory_bytes": int(vm.total),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": versions,
        "gpus": gpus(),
        "env_vars": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES") if k in os.environ
        },
        "project_git": git_info(Path(__file__).resolve().parent),
    }
    if suite_path is not None:
        sp = Path(suite_path).resolve()
        env["suite_file"] = {
            "path": str(sp),
            "sha256": hashlib.sha256(sp.read_bytes()).hexdigest() if sp.exists() else None,
            "git": git_info(sp),
            "git_blob": _git(["hash-object", str(sp)], sp.parent) if sp.exists() else None,
        }
    return env
