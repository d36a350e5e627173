"""Local, Docker-free bundling of the function code (lambda_src + its pinned dependencies).

The bundle is built by pip for the Lambda platform (``--platform manylinux2014_x86_64
--only-binary=:all:``) with ``--no-deps`` from lambda_src/requirements.txt (+ requirements-postgres.txt for the
Aurora PostgreSQL store), which pins every
dependency except boto3/botocore and their dependencies (the runtime provides them). The asset
hash is computed from the sources, the requirements and the target platform, so synth is
deterministic and CDK stages (and bundles) the asset once per app, whatever the number of
regions, and skips re-bundling when ``cdk.out`` already holds it.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL, STORE_DYNAMODB

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_SRC = REPO_ROOT / "lambda_src"
REQUIREMENTS = LAMBDA_SRC / "requirements.txt"
# The store's own dependencies on top (psycopg for PostgreSQL): the DynamoDB bundle stays lean.
STORE_REQUIREMENTS = {STORE_DYNAMODB: (), STORE_AURORA_POSTGRESQL: (LAMBDA_SRC / "requirements-postgres.txt",)}
# Wheels are cached per requirements hash so a second synth does not call pip at all.
WHEEL_CACHE = REPO_ROOT / ".bundle-cache"

RUNTIME = lambda_.Runtime.PYTHON_3_14
PYTHON_VERSION = "3.14"
PLATFORM = "manylinux2014_x86_64"
_IGNORED = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


def _source_files() -> list[Path]:
    return sorted(
        p
        for p in LAMBDA_SRC.rglob("*")
        if p.is_file() and not any(part in _IGNORED for part in p.relative_to(LAMBDA_SRC).parts) and p.suffix != ".pyc"
    )


def _requirements(store: str) -> tuple[Path, ...]:
    if store not in STORE_REQUIREMENTS:
        raise ValueError(f"store {store!r}: one of {sorted(STORE_REQUIREMENTS)}")
    return (REQUIREMENTS, *STORE_REQUIREMENTS[store])


@functools.cache
def source_hash(store: str = STORE_DYNAMODB) -> str:
    """Hash of the function sources, requirements and target platform (not of the machine)."""
    _requirements(store)
    suffix = "" if store == STORE_DYNAMODB else f"|{store}"  # the DynamoDB hash input keeps its form
    digest = hashlib.sha256(f"{PYTHON_VERSION}|{PLATFORM}|no-boto3{suffix}".encode())
    for path in _source_files():
        digest.update(path.relative_to(LAMBDA_SRC).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _requirements_hash(store: str = STORE_DYNAMODB) -> str:
    files = b"".join(path.read_bytes() for path in _requirements(store))
    return hashlib.sha256(files + f"{PYTHON_VERSION}|{PLATFORM}".encode()).hexdigest()[:16]


def install_dependencies(store: str = STORE_DYNAMODB) -> Path:
    """pip-install the store's requirements for the Lambda platform into the cache; return its dir."""
    target = WHEEL_CACHE / f"deps-{_requirements_hash(store)}"
    if (target / ".complete").exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--platform",
            PLATFORM,
            "--python-version",
            PYTHON_VERSION,
            "--target",
            str(target),
            *(arg for path in _requirements(store) for arg in ("-r", str(path))),
        ],
        check=True,
    )
    for cache_dir in target.rglob("__pycache__"):
        shutil.rmtree(cache_dir, ignore_errors=True)
    (target / ".complete").write_text("ok\n")
    return target


def build_bundle(output_dir: Path, store: str = STORE_DYNAMODB) -> None:
    """Write the deployable function code (sources + dependencies) into ``output_dir``."""
    deps = install_dependencies(store)
    shutil.copytree(deps, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    for path in _source_files():
        if path.name.startswith("requirements") and path.suffix == ".txt":
            continue
        dest = output_dir / path.relative_to(LAMBDA_SRC)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """CDK's local bundling hook: build the bundle with pip on this machine, never with Docker."""

    def __init__(self, store: str = STORE_DYNAMODB) -> None:
        self.store = store

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        build_bundle(Path(output_dir), self.store)
        return True


_BUNDLERS = {store: LocalPipBundling(store) for store in STORE_REQUIREMENTS}


def function_code(store: str = STORE_DYNAMODB) -> lambda_.Code:
    """The function code asset of a store. Call once per stack: every call for one store shares
    one hash and one bundle."""
    return lambda_.Code.from_asset(
        str(LAMBDA_SRC),
        asset_hash=source_hash(store),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Used only if local bundling were to decline; it never does.
            image=RUNTIME.bundling_image,
            local=_BUNDLERS[store],
            command=["bash", "-c", "echo 'local bundling only' && exit 1"],
        ),
    )
