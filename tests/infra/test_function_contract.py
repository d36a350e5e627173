"""What the templates hand the functions is what the functions accept, and the deployable
bundle is lean: the function code's dependencies without boto3/botocore, under 6 MB zipped."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from record_crypto.settings import (
    ENV_MRK_ARN,
    ENV_REGION,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    OPTIONAL_ENV_VARS,
    REQUIRED_ENV_VARS,
    Settings,
)

from benchmarks.coldstart import BUNDLE_TARGET_MB
from cdk_constructs import lambda_bundle
from tests.infra.helpers import resources, stack_output_ref
from tests.infra.synth import Synthesized

ACCOUNT = "111122223333"
MRK_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"


def _resolved(region: str, variables: dict[str, Any]) -> dict[str, str]:
    """The environment as Lambda would see it once deployed (the MRK ARN output resolved)."""
    env: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, str):
            env[name] = value
        else:
            ref = stack_output_ref(value)
            assert ref is not None and ref["Region"] == region, (name, value)
            env[name] = f"arn:aws:kms:{region}:{ACCOUNT}:key/{MRK_ID}"
    env[ENV_REGION] = region  # set by the Lambda runtime
    return env


def test_every_function_environment_passes_the_runtime_contract(synthesized: Synthesized) -> None:
    app = synthesized
    for region, stack in app.stacks.functions.items():
        for lid, function in resources(app.raw(stack), "AWS::Lambda::Function").items():
            variables = function["Properties"]["Environment"]["Variables"]
            assert set(variables) <= set(REQUIRED_ENV_VARS) | set(OPTIONAL_ENV_VARS), (lid, sorted(variables))
            assert ENV_REGION not in variables, "reserved: the Lambda runtime sets AWS_REGION"
            settings = Settings.from_env(_resolved(region, variables))
            assert settings.region == region and settings.mrk_arn.split(":")[3] == region
            assert settings.sensitive_fields == tuple(app.config.sensitive_fields), lid
            assert variables[ENV_MRK_ARN], lid


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    lambda_bundle.build_bundle(out)
    return out


def test_bundle_has_the_code_and_its_dependencies_but_not_boto3(bundle: Path) -> None:
    top = {p.name for p in bundle.iterdir()}
    assert {"writer.py", "reader.py", "record_crypto", "aws_encryption_sdk", "cryptography"} <= top, sorted(top)
    assert not {"boto3", "botocore", "s3transfer", "jmespath"} & top, "the Lambda runtime provides these"
    assert "requirements.txt" not in top
    tag = "cpython-" + lambda_bundle.PYTHON_VERSION.replace(".", "")
    stray = [p.name for p in bundle.rglob("*.pyc") if f".{tag}." not in p.name]
    assert not stray, f"bytecode of another Python than the runtime's: {stray[:5]}"
    # Built for the Lambda platform, not this machine.
    binaries = [p.name for p in bundle.rglob("*.so")]
    assert binaries and all("x86_64" in name or "abi3" in name for name in binaries), binaries


def test_the_bundle_carries_record_crypto_from_its_wheel(bundle: Path) -> None:
    """One source of truth: the functions run the package an application installs (lambda_src/pyproject.toml)."""
    wheel = lambda_bundle.record_crypto_wheel()
    with zipfile.ZipFile(wheel) as zf:
        packaged = {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}
    assert "record_crypto/py.typed" in packaged and "record_crypto/service.py" in packaged
    for name, content in packaged.items():
        assert (bundle / name).read_bytes() == content, name
    shipped = {p.relative_to(bundle).as_posix() for p in (bundle / "record_crypto").rglob("*") if p.is_file()}
    assert {n for n in shipped if "__pycache__" not in n} == {n for n in packaged if n.startswith("record_crypto/")}
    assert not {"pyproject.toml", "CHANGELOG.md", "LICENSE", "README.md"} & {p.name for p in bundle.iterdir()}


def _runtime_magic() -> bytes:
    done = subprocess.run(
        [
            lambda_bundle.bundle_python(),
            "-c",
            "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return bytes.fromhex(done.stdout)


def test_every_module_ships_bytecode_of_the_runtime_in_the_templates(bundle: Path, synthesized: Synthesized) -> None:
    """A read-only code directory cannot cache bytecode: every module of ours and of the dependencies
    ships its .pyc, compiled by the Python version the templates run, never revalidated (unchecked hash)."""
    runtimes = {
        function["Properties"]["Runtime"]
        for stack in synthesized.stacks.functions.values()
        for function in resources(synthesized.raw(stack), "AWS::Lambda::Function").values()
    }
    assert runtimes == {lambda_bundle.RUNTIME.name} == {f"python{lambda_bundle.PYTHON_VERSION}"}, runtimes
    magic = _runtime_magic()
    tag = "cpython-" + lambda_bundle.PYTHON_VERSION.replace(".", "")
    skipped = lambda_bundle.NOT_IMPORTED_AT_RUN_TIME  # build-time-only Python code (cffi, pycparser)
    sources = [
        p
        for p in bundle.rglob("*.py")
        if "__pycache__" not in p.parts and p.relative_to(bundle).parts[0] not in skipped
    ]
    assert len(sources) > 100, len(sources)
    missing = [s for s in sources if not (s.parent / "__pycache__" / f"{s.stem}.{tag}.pyc").is_file()]
    assert not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:3]}"
    for source in (bundle / "writer.py", bundle / "record_crypto" / "service.py", *sources[::50]):
        header = (source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc").read_bytes()[:8]
        assert header[:4] == magic, (source, header[:4], magic)
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{source}: not an unchecked-hash pyc"


def test_bundle_is_under_its_target_zipped(bundle: Path) -> None:
    """The size the benchmarks report against (decimal MB, deflate), with bytecode."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(bundle).as_posix())
    size = buffer.tell()
    assert size <= BUNDLE_TARGET_MB * 1_000_000, f"{size / 1e6:.2f} MB zipped"


def test_the_deployed_bundle_writes_and_reads_a_record_on_the_runtime_python(bundle: Path) -> None:
    """The bundle as CDK deploys it (cffi's and pycparser's Python code and the type stubs left out), run by
    the functions' Python version with the runtime's boto3 beside it and nothing else on the path: the
    writer's handler encrypts and stores a record and the reader's decrypts it, against the emulated AWS.
    Nothing else in the suite runs the deployed bundle (the emulator runs lambda_src on this venv)."""
    from benchmarks import coldstart

    top = {p.name for p in bundle.iterdir()}
    assert not top & {"cffi", "pycparser", "wrapt-stubs"}, sorted(top)
    assert "_cffi_backend" in {p.name.split(".")[0] for p in bundle.iterdir()}  # cryptography loads it
    assert not list(bundle.rglob("*.pyi"))
    runtime = coldstart._runtime_site(lambda_bundle.bundle_python(), lambda_bundle.WHEEL_CACHE)
    with coldstart._emulated_aws() as (endpoint, keys):
        env = coldstart._child_env(endpoint, keys)
        python = lambda_bundle.bundle_python()
        written = {"id": "bundle-1", "record": coldstart.SAMPLE_RECORD}
        coldstart._spawn(python, bundle, runtime, env, ("writer", "handler"), written)  # fails loudly if not ok
        coldstart._spawn(python, bundle, runtime, env, ("reader", "handler"), {"id": "bundle-1"})


def test_only_the_aurora_bundle_carries_the_postgresql_driver(bundle: Path, tmp_path: Path) -> None:
    """psycopg (with libpq) is bundled for the Aurora PostgreSQL store only: the DynamoDB bundle
    above stays under its size target."""
    assert not (bundle / "psycopg").exists() and not (bundle / "psycopg_binary").exists()
    aurora = tmp_path / "aurora"
    lambda_bundle.build_bundle(aurora, "aurora-postgresql")
    top = {p.name for p in aurora.iterdir()}
    assert {"psycopg", "psycopg_binary", "db_setup.py", "rotation.py", "record_crypto"} <= top, sorted(top)
    assert lambda_bundle.source_hash("aurora-postgresql") != lambda_bundle.source_hash("dynamodb")
    with pytest.raises(ValueError, match="store 'mysql'"):
        lambda_bundle.source_hash("mysql")


def test_without_a_python_of_the_runtime_version_the_bundle_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(lambda_bundle.BUNDLE_PYTHON_ENV, raising=False)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    lambda_bundle.bundle_python.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=rf"no CPython {lambda_bundle.PYTHON_VERSION} .*set MRK_BUNDLE_PYTHON"):
            lambda_bundle.bundle_python()
    finally:
        lambda_bundle.bundle_python.cache_clear()


def test_the_handlers_never_import_the_modules_shipped_without_bytecode() -> None:
    """cffi's and pycparser's Python code is left uncompiled (NOT_IMPORTED_AT_RUN_TIME): the functions, with the
    Encryption SDK's crypto modules loaded, must not import it, or their cold start would compile it."""
    probe = (
        "import sys, writer, reader; "
        "import aws_encryption_sdk.internal.crypto.authentication, aws_encryption_sdk.internal.crypto.encryption; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(lambda_bundle.LAMBDA_SRC),
        ENV_REGION: "us-east-2",
        ENV_TABLE_NAME: "t-records",
        ENV_MRK_ARN: f"arn:aws:kms:us-east-2:{ACCOUNT}:key/{MRK_ID}",
        ENV_SENSITIVE_FIELDS: "ssn",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(done.stdout.strip()))
    assert {"writer", "reader", "aws_encryption_sdk", "cryptography"} <= loaded
    assert not loaded & set(lambda_bundle.NOT_IMPORTED_AT_RUN_TIME), sorted(loaded)
