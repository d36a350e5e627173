"""The function environment contract: validated once at cold start, every bad value named."""

from __future__ import annotations

import pytest
from record_crypto.settings import (
    ENV_ALGORITHM_SUITE,
    ENV_CACHE_MAX_AGE,
    ENV_CACHE_MAX_BYTES,
    ENV_CACHE_MAX_MESSAGES,
    ENV_DATA_KEY_CACHE,
    ENV_MAX_RECORD_BYTES,
    ENV_MRK_ARN,
    ENV_REGION,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    MAX_RECORD_BYTES_LIMIT,
    REQUIRED_ENV_VARS,
    ConfigurationError,
    Settings,
)

REAL_ARN = "arn:aws:kms:us-east-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
MOTO_ARN = "arn:aws:kms:us-east-2:123456789012:key/mrk-109d46e1-0486-44c2-8aaa-399fd1391a5f"
GOOD = {
    ENV_REGION: "us-east-2",
    ENV_TABLE_NAME: "mrk-toolkit-records",
    ENV_MRK_ARN: REAL_ARN,
    ENV_SENSITIVE_FIELDS: "ssn,dob",
}


def test_minimal_environment_gets_safe_defaults() -> None:
    s = Settings.from_env(GOOD)
    assert (s.region, s.table_name, s.mrk_arn) == ("us-east-2", "mrk-toolkit-records", REAL_ARN)
    assert s.sensitive_fields == ("ssn", "dob")
    assert s.key_id == "mrk-1234abcd12ab34cd56ef1234567890ab"
    assert s.algorithm_suite == "signing", "the signing suite is the default"
    assert s.cache is None, "data-key caching is off unless asked for"
    assert s.max_record_bytes == 32768


def test_moto_mrk_ids_are_accepted() -> None:
    assert Settings.from_env({**GOOD, ENV_MRK_ARN: MOTO_ARN}).key_id.startswith("mrk-")


def test_cache_settings_are_read_when_cache_is_on() -> None:
    s = Settings.from_env(
        {
            **GOOD,
            ENV_DATA_KEY_CACHE: "on",
            ENV_CACHE_MAX_AGE: "60",
            ENV_CACHE_MAX_MESSAGES: "500",
            ENV_CACHE_MAX_BYTES: "1000000",
        }
    )
    assert s.cache is not None
    assert (s.cache.max_age_seconds, s.cache.max_messages, s.cache.max_bytes) == (60.0, 500, 1_000_000)


@pytest.mark.parametrize("name", REQUIRED_ENV_VARS)
def test_each_required_variable_is_named_when_missing(name: str) -> None:
    env = {**GOOD}
    env.pop(name)
    with pytest.raises(ConfigurationError, match=rf"^Invalid function environment {name}=<unset>: required"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        (ENV_REGION, "US-EAST-2", "an AWS region"),
        (ENV_TABLE_NAME, "a b", "a DynamoDB table name"),
        (
            ENV_MRK_ARN,
            "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "multi-region key",
        ),
        (ENV_MRK_ARN, "alias/records", "multi-region key"),
        (ENV_MRK_ARN, REAL_ARN.replace("us-east-2", "us-west-1"), "own region us-east-2"),
        (ENV_SENSITIVE_FIELDS, "ssn,ssn", "distinct field names"),
        (ENV_SENSITIVE_FIELDS, "id,ssn", "not 'id'"),
        (ENV_SENSITIVE_FIELDS, "ssn,1bad", "distinct field names"),
        (ENV_ALGORITHM_SUITE, "unsigned", "one of signing, committing-unsigned"),
        (ENV_DATA_KEY_CACHE, "yes", "on or off"),
        (ENV_MAX_RECORD_BYTES, "0", "an integer from 1"),
        (ENV_MAX_RECORD_BYTES, str(MAX_RECORD_BYTES_LIMIT + 1), f"to {MAX_RECORD_BYTES_LIMIT}"),
        (ENV_MAX_RECORD_BYTES, "32k", "an integer"),
    ],
)
def test_each_bad_value_is_named_with_what_is_allowed(name: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({**GOOD, name: value})
    assert err.value.name == name
    assert str(err.value).startswith(f"Invalid function environment {name}={value!r}: ")
    assert allowed in str(err.value)


@pytest.mark.parametrize("name", [ENV_CACHE_MAX_AGE, ENV_CACHE_MAX_MESSAGES, ENV_CACHE_MAX_BYTES])
def test_cache_bounds_are_validated_when_cache_is_on(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**GOOD, ENV_DATA_KEY_CACHE: "on", name: "-1"})


# -- the names written once here (the constructs, the stacks, the emulator and the tools import them) --
def _botocore_partitions() -> list[dict[str, object]]:
    from botocore.loaders import create_loader

    return list(create_loader().load_data("endpoints")["partitions"])


def test_the_region_pattern_accepts_every_region_botocore_knows_and_only_region_names() -> None:
    import re

    from record_crypto.settings import PARTITION_PATTERN, REGION_NAME

    partitions = _botocore_partitions()
    regions = [region for p in partitions for region in p["regions"]]  # type: ignore[attr-defined]
    assert len(regions) > 30
    assert [r for r in regions if not REGION_NAME.match(r)] == []
    assert [p["partition"] for p in partitions if not re.fullmatch(PARTITION_PATTERN, str(p["partition"]))] == []
    for name in ("ap-southeast-12", "us-gov-west-1", "eu-isoe-west-1", "eusc-de-east-1"):
        assert REGION_NAME.match(name), f"{name}: a region number may have two digits"
    for name in ("us-east", "us-east-123", "US-EAST-1", "useast1", "us-east-1 ", "u-east-1", "us-east-1a"):
        assert not REGION_NAME.match(name), name


def test_a_two_digit_region_passes_the_function_contract() -> None:
    region = "ap-southeast-12"
    env = {**GOOD, ENV_REGION: region, ENV_MRK_ARN: REAL_ARN.replace("us-east-2", region)}
    assert Settings.from_env(env).region == region


def test_the_algorithm_suite_type_lists_the_suites() -> None:
    from typing import get_args

    from record_crypto.settings import ALGORITHM_SUITES, SUITE_SIGNING, AlgorithmSuite

    assert get_args(AlgorithmSuite) == ALGORITHM_SUITES
    assert ALGORITHM_SUITES[0] == SUITE_SIGNING, "the default comes first"


# Scripts that must run without the toolkit on their path, and so spell the names themselves.
STANDALONE = {
    # The cold-start benchmark's bare Encryption SDK sample: copied beside its dependencies alone.
    "benchmarks/bare_sample.py",
}


def test_no_other_module_spells_the_names_written_here() -> None:
    """The variable names, suites, role names and the region pattern are imported, never copied:
    a second copy drifts (two region patterns once disagreed on two-digit region numbers)."""
    import ast
    import subprocess
    from pathlib import Path

    from record_crypto import settings

    root = Path(__file__).resolve().parents[2]
    own = {
        name: value
        for name, value in vars(settings).items()
        if isinstance(value, str)
        and (name.startswith("ENV_") or name.startswith("SUITE_") or name.endswith("_ROLE") or name == "DB_MASTER_USER")
    }
    del own["ENV_REGION"]  # AWS_REGION is the Lambda runtime's (and boto3's) own variable
    names = {value: name for name, value in own.items()}
    copies = []
    # The repository's own files (tracked or new, not ignored): never cdk.out's asset copies of settings.py.
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in sorted(Path(name) for name in listed):
        path = root / rel
        if rel.parts[0] == "tests" or path == Path(settings.__file__).resolve() or str(rel) in STANDALONE:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and id(node) not in docstrings else None
            if isinstance(text, str) and (text in names or "[a-z]{2" in text):
                copies.append(f"{rel}:{node.lineno} {text!r} ({names.get(text, 'a region pattern')})")
    assert not copies, "import these from record_crypto.settings instead:\n" + "\n".join(copies)
