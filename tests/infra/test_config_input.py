"""What a new user types wrong: a region that does not exist, a misspelled key, broken cdk.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stacks.config import (
    KNOWN_FIELDS,
    CdkJsonError,
    ConfigError,
    MisspeltKeyError,
    known_regions,
    load_config,
    main,
    misspelt_toolkit_key,
    read_cdk_json,
)
from tests.infra.synth import REPO_ROOT, cdk_json_context


def _load(**overrides: Any) -> Any:
    context = cdk_json_context()
    context.update({f"mrk-toolkit:{k}": v for k, v in overrides.items()})
    return load_config(context)


def test_known_regions_come_from_botocore_data() -> None:
    import botocore.session

    session = botocore.session.get_session()
    assert set(session.get_available_regions("kms")) <= set(known_regions())
    assert known_regions()["cn-north-1"] == "aws-cn"
    assert known_regions()["us-gov-west-1"] == "aws-us-gov"


@pytest.mark.parametrize(
    ("overrides", "field", "hint"),
    [
        ({"replicaRegions": "us-nowhere-1"}, "replicaRegions", "not a region botocore"),
        ({"replicaRegions": "us-west-1,eu-wset-1"}, "replicaRegions", "did you mean eu-west-1"),
        ({"primaryRegion": "us-east-7"}, "primaryRegion", "did you mean us-east-"),
    ],
)
def test_unknown_regions_are_refused_with_a_suggestion(overrides: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(**overrides)
    assert err.value.field_name == field
    assert hint in str(err.value)


def test_every_known_region_of_a_partition_is_accepted() -> None:
    assert _load(replicaRegions="eu-west-1,ap-southeast-7,mx-central-1").replica_regions[-1] == "mx-central-1"
    cn = _load(primaryRegion="cn-north-1", replicaRegions="cn-northwest-1")
    assert cn.regions == ("cn-north-1", "cn-northwest-1")


def test_misspelled_key_gets_did_you_mean() -> None:
    with pytest.raises(ConfigError) as err:
        _load(replicaRegion="us-west-1")
    assert "did you mean replicaRegions" in str(err.value)
    assert "-c mrk-toolkit:replicaRegions=..." in str(err.value)


def test_malformed_cdk_json_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "cdk.json"
    broken.write_text('{\n  "app": "python3 app.py",\n  "context": {\n    "a": 1,\n  }\n}\n')
    with pytest.raises(CdkJsonError, match=r"line 5, column 3"):
        read_cdk_json(broken)
    assert main([str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 5, column 3" in err


def test_config_check_passes_on_the_committed_cdk_json() -> None:
    assert main([str(REPO_ROOT / "cdk.json")]) == 0


PREFIX_TYPOS = ("mrk-tolkit", "mrk-toolkti", "mrktoolkit", "mrk_toolkit", "MRK-Toolkit", "mrk-toolkit.")


def _field_typos(name: str) -> list[str]:
    """A dropped, a swapped and a doubled letter in the middle of the field name."""
    i = len(name) // 2
    return [
        name[:i] + name[i + 1 :],
        name[: i - 1] + name[i] + name[i - 1] + name[i + 1 :],
        name[:i] + name[i] + name[i:],
    ]


def _refusal(key: str) -> ConfigError:
    context = cdk_json_context()
    context[key] = "true"
    with pytest.raises(ConfigError) as err:
        load_config(context)
    return err.value


@pytest.mark.parametrize("name", KNOWN_FIELDS)
def test_a_typo_in_the_prefix_of_every_option_names_the_key_meant(name: str) -> None:
    for prefix in PREFIX_TYPOS:
        key = f"{prefix}:{name}" if not prefix.endswith(".") else f"{prefix}{name}"
        error = _refusal(key)
        message = str(error)
        assert isinstance(error, MisspeltKeyError) and error.field_name == name
        assert f"{key!r} (did you mean mrk-toolkit:{name}?)" in message, message
        assert f"-c mrk-toolkit:{name}=..." in message and "\n" not in message


@pytest.mark.parametrize("name", KNOWN_FIELDS)
def test_a_typo_in_the_field_of_every_option_names_the_key_meant(name: str) -> None:
    for typo in _field_typos(name):
        message = str(_refusal(f"mrk-toolkit:{typo}"))
        assert f"mrk-toolkit:{typo}=" in message and f"-c mrk-toolkit:{name}=..." in message, message
        # both slips at once: the prefix and the field are each corrected
        both = _refusal(f"mrk-tolkit:{typo}")
        assert both.field_name == name and f"-c mrk-toolkit:{name}=..." in str(both)


@pytest.mark.parametrize("key", ["dataKeyCache", "toolkit:store", "mrk:sensitiveFields", "MRK-TOOLKIT:account"])
def test_a_known_option_under_another_prefix_or_none_is_refused(key: str) -> None:
    error = _refusal(key)
    assert isinstance(error, MisspeltKeyError) and error.meant.lower() == f"mrk-toolkit:{key.split(':')[-1]}".lower()


@pytest.mark.parametrize(
    "key",
    [
        "aws:cdk:enable-path-metadata",
        "aws:cdk:bundling-stacks",
        "acknowledged-issue-numbers",
        "availability-zones:account=123456789012:region=us-east-2",
        "cdk-default-account",
        "@aws-cdk/core:stackRelativeExports",
        "myapp:owner",
    ],
)
def test_cdk_and_unrelated_context_keys_are_left_alone(key: str) -> None:
    context = cdk_json_context()
    context[key] = "x"
    assert load_config(context).primary_region == "us-east-2"


def test_every_key_of_the_committed_cdk_json_is_accepted() -> None:
    """cdk.json's feature flags (@aws-cdk/...) sit beside the toolkit's keys: none is taken for a typo."""
    assert all(misspelt_toolkit_key(key) is None for key in read_cdk_json(REPO_ROOT / "cdk.json")["context"])
