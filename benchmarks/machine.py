"""What the figures were measured on: CPU, cores, memory, OS, Python, package and tool versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

PACKAGES = (
    "aws-encryption-sdk",
    "cryptography",
    "boto3",
    "botocore",
    "moto",
    "aws-cdk-lib",
    "constructs",
    "cdk-nag",
    "jsii",
)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def describe() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")), 0
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        node = "not found"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "OS": f"{os_name} (Linux {platform.release()}, {platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Node.js": node or "not found",
    }


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
