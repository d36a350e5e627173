"""What a new user types wrong: a region that does not exist, a misspelled key, broken cdk.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stacks.config import CdkJsonError, ConfigError, known_regions, load_config, main, read_cdk_json
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
