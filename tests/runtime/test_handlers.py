"""The handler modules as Lambda loads them: the environment is checked at import (cold start)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest
from record_crypto.settings import ENV_MRK_ARN, ConfigurationError

from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions, sample_record


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def load(module: str, env: dict[str, str]):  # type: ignore[no-untyped-def]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop(module, None)
        return importlib.import_module(module)

    yield load
    sys.modules.pop("writer", None)
    sys.modules.pop("reader", None)


def test_handlers_write_in_one_region_and_read_in_another(aws: TwoRegions, fresh_import) -> None:  # type: ignore[no-untyped-def]
    record = sample_record()
    writer = fresh_import("writer", aws.env(PRIMARY))
    assert writer.handler({"id": "h1", "record": record}, None)["ok"] is True
    aws.replicate("h1")
    reader = fresh_import("reader", aws.env(REPLICA))
    result = reader.handler({"id": "h1"}, None)
    assert result["ok"] is True and result["record"] == record, result


def test_a_bad_environment_fails_the_cold_start_naming_the_variable(aws: TwoRegions, fresh_import) -> None:  # type: ignore[no-untyped-def]
    env = aws.env(REPLICA, **{ENV_MRK_ARN: aws.primary_arn})  # the other region's key
    with pytest.raises(ConfigurationError, match=rf"^Invalid function environment {ENV_MRK_ARN}="):
        fresh_import("reader", env)
