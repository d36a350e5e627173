"""The discovery parameters (README "Discovery"): each region's functions stack publishes, under
/<stack prefix>/<region>, exactly the values an application needs, and they are the values the
region's functions use."""

from __future__ import annotations

import json

from lambda_src.record_crypto.settings import (
    DATABASE_DISCOVERY_PARAMETERS,
    DISCOVERY_PARAMETERS,
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_SECRET_ARN,
    ENV_MRK_ARN,
    ENV_TABLE_NAME,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_DB_WRITER_ENDPOINT,
    PARAM_DB_WRITER_SECRET_ARN,
    PARAM_RECORD_KEY_ARN,
    PARAM_RECORD_OPTIONS,
    PARAM_TABLE_NAME,
    discovery_path,
)
from tests.infra.helpers import resources
from tests.infra.synth import Synthesized


def _parameters(tpl: dict) -> dict[str, dict]:
    """parameter name -> its properties."""
    return {p["Properties"]["Name"]: p["Properties"] for p in resources(tpl, "AWS::SSM::Parameter").values()}


def _function_env(tpl: dict, role: str) -> dict:
    """The environment of the writer or reader function (by its logical id)."""
    for lid, res in resources(tpl, "AWS::Lambda::Function").items():
        if lid.startswith(f"Records{role}"):
            return res["Properties"]["Environment"]["Variables"]
    raise AssertionError(f"no {role} function")


def test_each_region_publishes_its_key_table_and_options_under_one_path(synthesized: Synthesized) -> None:
    app = synthesized
    for region, stack in app.stacks.functions.items():
        tpl = app.raw(stack)
        path = discovery_path(app.config.stack_prefix, region)
        params = _parameters(tpl)
        assert set(params) == {f"{path}/{name}" for name in DISCOVERY_PARAMETERS}, region
        assert all(p["Type"] == "String" for p in params.values())
        writer = _function_env(tpl, "Writer")
        assert params[f"{path}/{PARAM_RECORD_KEY_ARN}"]["Value"] == writer[ENV_MRK_ARN]
        assert params[f"{path}/{PARAM_TABLE_NAME}"]["Value"] == writer[ENV_TABLE_NAME]
        options = json.loads(params[f"{path}/{PARAM_RECORD_OPTIONS}"]["Value"])
        assert options == {
            "store": app.config.store,
            "sensitive_fields": list(app.config.sensitive_fields),
            "unsigned_attributes": list(app.config.unsigned_attributes),
            "algorithm_suite": app.config.algorithm_suite,
            "max_record_bytes": app.config.max_record_bytes,
        }


def test_the_aurora_store_publishes_its_endpoints_and_the_functions_secrets(aurora: Synthesized) -> None:
    app = aurora
    for region, stack in app.stacks.functions.items():
        tpl = app.raw(stack)
        path = discovery_path(app.config.stack_prefix, region)
        params = _parameters(tpl)
        expected = (*DISCOVERY_PARAMETERS, *DATABASE_DISCOVERY_PARAMETERS)
        assert set(params) == {f"{path}/{name}" for name in expected}, region
        assert len(expected) <= 10  # one page of GetParametersByPath

        def value(name: str, path: str = path, params: dict = params) -> object:
            return params[f"{path}/{name}"]["Value"]

        writer, reader = _function_env(tpl, "Writer"), _function_env(tpl, "Reader")
        assert value(PARAM_DB_WRITER_ENDPOINT) == writer[ENV_DB_HOST]
        assert value(PARAM_DB_READER_ENDPOINT) == reader[ENV_DB_HOST]
        assert value(PARAM_DB_PORT) == writer[ENV_DB_PORT]
        assert value(PARAM_DB_NAME) == writer[ENV_DB_NAME]
        assert value(PARAM_DB_WRITER_SECRET_ARN) == writer[ENV_DB_SECRET_ARN]
        assert value(PARAM_DB_READER_SECRET_ARN) == reader[ENV_DB_SECRET_ARN]
