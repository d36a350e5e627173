"""Local, Docker-free bundling of the function code (lambda_src + its pinned dependencies).

The bundle is built by pip for the Lambda platform (``--platform manylinux2014_x86_64
--only-binary=:all:``) with ``--no-deps`` from lambda_src/requirements.txt (+ requirements-postgres.txt for the
Aurora PostgreSQL store), which pins every
dependency except boto3/botocore and their dependencies (the runtime provides them). The asset
hash is computed from the sources, the requirements and the target platform, so synth is
deterministic and CDK stages (and bundles) the asset once per app, whatever the number of
regions, and skips re-bundling when ``cdk.out`` already holds it.

Bytecode is compiled at build time by the functions' own Python version (``PYTHON_VERSION``, the
runtime in the templates): on Lambda the code directory is read-only, so without it every cold start
compiles every module of ours and of the dependencies. The ``.pyc`` files are ``unchecked-hash``
(never revalidated against the source: the code of a deployed function does not change) and name
``/var/task`` (Lambda's code directory) as their source path, so the bundle does not depend on where
it was built. The interpreter: ``MRK_BUNDLE_PYTHON``, else ``python3.13`` on PATH, else pyenv's.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
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

# The functions' runtime. python3.13, not 3.14: the bytecode must be compiled by the runtime's own
# version, and this machine (and CI) has a CPython 3.13 to compile with but no 3.14 (DESIGN.md §5).
RUNTIME = lambda_.Runtime.PYTHON_3_13
PYTHON_VERSION = "3.13"
# cdk-nag's AwsSolutions-L1 asks for the latest runtime; each function built from this bundle acknowledges it so.
RUNTIME_REASON = (
    "python3.13, not the latest (3.14), by decision: the bundle ships bytecode compiled at build time by the "
    "runtime's own Python version (a read-only code directory cannot cache it, and the cold start would compile "
    "every module), and the build machines have CPython 3.13 but no 3.14. python3.13 is a supported Lambda "
    "runtime; moving to 3.14 is changing PYTHON_VERSION once a 3.14 interpreter is there to compile with."
)
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the code: the source path the bytecode names
BUNDLE_PYTHON_ENV = "MRK_BUNDLE_PYTHON"
# Dependencies whose Python code the functions never import: cffi's modules and pycparser compile C at build
# time; at run time cryptography loads only cffi's compiled backend (``_cffi_backend``, a top-level module that
# stays). Their Python code is left out of the deployed bundle (their licences, in the dist-info, stay), and so
# are type stubs (``*.pyi``, ``*-stubs``): ~0.2 MB zipped less. The cache keeps them, uncompiled (the cold-start
# benchmark's bare sample uses the dependencies as pip leaves them).
NOT_IMPORTED_AT_RUN_TIME = ("cffi", "pycparser")
NOT_DEPLOYED = (*NOT_IMPORTED_AT_RUN_TIME, "*.pyi", "*-stubs")
# Part of the hashes: a bundle with bytecode (and which) is another asset.
BYTECODE = "pyc-unchecked-hash-without-" + "-".join(NOT_DEPLOYED)
PLATFORM = "manylinux2014_x86_64"
_IGNORED = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist")
# The package's own files (lambda_src/pyproject.toml makes record_crypto pip-installable): hashed, not deployed.
PACKAGE_FILES = ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE")


def _source_files() -> list[Path]:
    return sorted(
        p
        for p in LAMBDA_SRC.rglob("*")
        if p.is_file()
        and not any(part in _IGNORED or part.endswith(".egg-info") for part in p.relative_to(LAMBDA_SRC).parts)
        and p.suffix != ".pyc"
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
    digest = hashlib.sha256(f"{PYTHON_VERSION}|{PLATFORM}|no-boto3|{BYTECODE}{suffix}".encode())
    for path in _source_files():
        digest.update(path.relative_to(LAMBDA_SRC).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _requirements_hash(store: str = STORE_DYNAMODB) -> str:
    files = b"".join(path.read_bytes() for path in _requirements(store))
    return hashlib.sha256(files + f"{PYTHON_VERSION}|{PLATFORM}|{BYTECODE}".encode()).hexdigest()[:16]


def _is_runtime_python(candidate: str) -> bool:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == PYTHON_VERSION


@functools.cache
def bundle_python() -> str:
    """The CPython of the functions' runtime version, which compiles the bundle's bytecode."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        os.environ.get(BUNDLE_PYTHON_ENV, ""),
        shutil.which(f"python{PYTHON_VERSION}") or "",
        *(str(p / "bin" / "python") for p in sorted(pyenv.glob(f"{PYTHON_VERSION}.*"), reverse=True)),
    ]
    for candidate in filter(None, candidates):
        if _is_runtime_python(candidate):
            return candidate
    raise RuntimeError(
        f"no CPython {PYTHON_VERSION} to compile the function bundle's bytecode with (the runtime is "
        f"{RUNTIME.name}): install python{PYTHON_VERSION} or set {BUNDLE_PYTHON_ENV} to its path"
    )


def compile_bytecode(root: Path, paths: list[Path]) -> None:
    """Compile ``paths`` (files or folders under ``root``) with the runtime's own Python."""
    if not paths:
        return
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            bundle_python(),
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(root),
            "-p",
            LAMBDA_TASK_ROOT,
            *(str(path) for path in paths),
        ],
        check=True,
    )


def install_dependencies(store: str = STORE_DYNAMODB) -> Path:
    """pip-install the store's requirements for the Lambda platform into the cache; return its dir."""
    final = WHEEL_CACHE / f"deps-{_requirements_hash(store)}"
    if (final / ".complete").exists():
        return final
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    # Built in a private dir, then published by rename: two processes (the test workers) building at once
    # never see, delete or write into each other's half-built cache.
    target = Path(tempfile.mkdtemp(prefix=f"{final.name}.building-", dir=WHEEL_CACHE))
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",  # bytecode comes from the runtime's own Python (compile_bytecode), never this one's
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
    for cache_dir in target.rglob("__pycache__"):  # shipped inside a wheel, by another version
        shutil.rmtree(cache_dir, ignore_errors=True)
    compile_bytecode(target, [p for p in target.iterdir() if p.name not in NOT_IMPORTED_AT_RUN_TIME])
    (target / ".complete").write_text("ok\n")
    return _publish(target, final)


def _publish(built: Path, final: Path) -> Path:
    """Move a complete cache dir into place by rename (atomic); if another process published it first,
    use theirs. A complete published dir is never deleted (another process may be copying from it)."""
    for _ in range(2):
        try:
            built.rename(final)
            return final
        except OSError:  # final exists and is not empty
            if (final / ".complete").exists():
                break
            shutil.rmtree(final, ignore_errors=True)  # an interrupted build of an older version, in place
    shutil.rmtree(built, ignore_errors=True)
    return final


def _package_files() -> list[Path]:
    """What the record_crypto wheel is built from (lambda_src/pyproject.toml)."""
    package = [p for p in _source_files() if p.relative_to(LAMBDA_SRC).parts[0] == "record_crypto"]
    return sorted([*(LAMBDA_SRC / name for name in PACKAGE_FILES), *package])


def record_crypto_wheel() -> Path:
    """The record_crypto wheel (``pip wheel`` of lambda_src/pyproject.toml), built once per content: what an
    application installs and what the functions' bundle is made from."""
    digest = hashlib.sha256()
    for path in _package_files():
        digest.update(path.relative_to(LAMBDA_SRC).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    final = WHEEL_CACHE / f"wheel-{digest.hexdigest()[:16]}"
    target = final
    if not (final / ".complete").exists():
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f"{final.name}.building-", dir=WHEEL_CACHE))
        with tempfile.TemporaryDirectory(prefix="record-crypto-src-") as tmp:  # keeps build/ out of lambda_src
            for path in _package_files():
                dest = Path(tmp) / path.relative_to(LAMBDA_SRC)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps"]
            subprocess.run([*pip_wheel, "--wheel-dir", str(target), tmp], check=True)  # noqa: S603 - fixed argv
        (target / ".complete").write_text("ok\n")
        target = _publish(target, final)
    (wheel,) = target.glob("*.whl")
    return wheel


def build_bundle(output_dir: Path, store: str = STORE_DYNAMODB) -> None:
    """Write the deployable function code (sources + dependencies) into ``output_dir``."""
    deps = install_dependencies(store)
    shutil.copytree(deps, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete", *NOT_DEPLOYED))
    with zipfile.ZipFile(record_crypto_wheel()) as wheel:  # a pure-Python wheel installs by unpacking
        wheel.extractall(output_dir)
    handlers = []  # the functions' own modules (writer.py, reader.py, db_setup.py): not part of the package
    for path in _source_files():
        rel = path.relative_to(LAMBDA_SRC)
        if path.suffix != ".py" or rel.parts[0] == "record_crypto":
            continue
        shutil.copy2(path, output_dir / rel)
        handlers.append(output_dir / rel)
    compile_bytecode(output_dir, [*handlers, output_dir / "record_crypto"])


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
