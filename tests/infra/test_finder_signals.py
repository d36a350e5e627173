"""The finder's signals (beacon fields only): in every region its Errors, Throttles, security refusals,
KMS throttling and TooManyCandidates refusals (and DatabaseUnavailable on the Aurora store) are alarmed to
the region's own topic, on the finder function's name and the finder's metric dimensions; the dashboard has
a finder row per region. Without beacon fields none of it exists (the snapshots hold that whole)."""

from __future__ import annotations

import json
from typing import Any

from cdk_constructs.signals import finder_alarm_specs
from lambda_src.record_crypto.observability import DIMENSION_ERROR_TYPE, DIMENSION_OPERATION, OPERATION_FIND
from tests.infra.helpers import resources
from tests.infra.synth import Synthesized


def _alarms(tpl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["AlarmName"]: r["Properties"] for r in resources(tpl, "AWS::CloudWatch::Alarm").values()}


def _finder_function(tpl: dict[str, Any]) -> str:
    (lid,) = [lid for lid in resources(tpl, "AWS::Lambda::Function") if lid.startswith("RecordsFinderFunction")]
    return lid


def _check(app: Synthesized, *, aurora: bool) -> None:
    config = app.config
    for region in config.regions:
        stack = app.stacks.functions[region]
        tpl = app.raw(stack)
        alarms = _alarms(tpl)
        topic = [lid for lid in resources(tpl, "AWS::SNS::Topic")]
        specs = finder_alarm_specs(
            prefix=config.stack_prefix, region=region, table_name=config.table_name, aurora=aurora
        )
        types = {dict(s.dimensions).get(DIMENSION_ERROR_TYPE) for s in specs} - {None}
        assert types == ({"TooManyCandidates", "DatabaseUnavailable"} if aurora else {"TooManyCandidates"}), types
        for spec in specs:
            alarm = alarms.get(spec.name)
            assert alarm is not None, f"{spec.name} missing in {region}"
            dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if spec.function is not None:
                assert dims["FunctionName"] == {"Ref": _finder_function(tpl)}, spec.name
            else:
                assert dims[DIMENSION_OPERATION] == OPERATION_FIND, spec.name
            assert [a["Ref"] for a in alarm["AlarmActions"]] == topic, spec.name
    (dashboard,) = [
        d for s in app.stacks.functions.values() for d in resources(app.raw(s), "AWS::CloudWatch::Dashboard").values()
    ]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert all(f"Finder ({r})" in body for r in config.regions), "a finder row per region"


def test_the_finders_refusals_are_alarmed_in_every_region(beacons_app: Synthesized) -> None:
    _check(beacons_app, aurora=False)


def test_the_aurora_finders_database_refusals_are_alarmed(aurora_beacons_app: Synthesized) -> None:
    _check(aurora_beacons_app, aurora=True)


def test_no_finder_alarms_without_beacons(default_app: Synthesized) -> None:
    for stack in default_app.stacks.functions.values():
        assert not [name for name in _alarms(default_app.raw(stack)) if "-finder-" in name]
