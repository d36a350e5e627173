"""The application roles with beacon fields (and tenants): the application writer computes each record's
beacons as the writer function does (``kms:GenerateMac`` with HMAC_SHA_256 on its region's beacon key, nothing
else of it), the application reader none; discovery publishes the fields and the region's beacon key."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from cloud_assembly.role_access import DeploymentView, RoleAccess, role_access
from lambda_src.record_crypto.settings import PARAM_BEACON_FIELDS, PARAM_BEACON_KEY_ARN, discovery_path
from tests.infra.conftest import TENANT_BEACONS
from tests.infra.helpers import resources
from tests.infra.synth import Synthesized, context_for, synthesize
from tests.infra.test_application_roles import PRINCIPALS
from tests.infra.test_role_contracts import assert_exactly_its_contract, kinds, role, view_of


@pytest.fixture(scope="module")
def app() -> Synthesized:
    """Tenants, beacon fields and application roles, with every nag pack and our rules."""
    return synthesize(context_for(**TENANT_BEACONS, applicationPrincipals=PRINCIPALS), nag=True)


@pytest.fixture(scope="module")
def view(app: Synthesized) -> DeploymentView:
    return view_of(app)


def test_every_role_does_exactly_its_contract(app: Synthesized, view: DeploymentView) -> None:
    assert {k for _, k in kinds(view)} >= {"application-writer", "application-tenant-reader", "tenant-finder"}
    assert not [k for _, k in kinds(view) if k.startswith("unknown")]
    assert_exactly_its_contract(view)


def _beacon_key(view: DeploymentView, region: str) -> str:
    return next(r.arn for r in view.resources if r.stem == "BeaconKey" and r.region == region and r.arn)


def test_the_application_writer_computes_beacons_with_its_regions_key_only(view: DeploymentView) -> None:
    for region in ("us-east-2", "us-west-1"):
        writer = role_access(role(view, region, "ApplicationWriterRole"), view)
        macs = {(a.target.arn, a.variant.tag) for a in writer.asked if a.allowed and a.action == "kms:GenerateMac"}
        assert macs == {(_beacon_key(view, region), "mac-hmac-sha-256")}, region
        reader = role_access(role(view, region, "ApplicationReaderRole"), view)
        assert not [a for a in reader.asked if a.allowed and a.action == "kms:GenerateMac"], region


def _edited_writer(view: DeploymentView, edit) -> RoleAccess:  # type: ignore[no-untyped-def]
    target = role(view, "us-west-1", "ApplicationWriterRole")
    policies = copy.deepcopy(list(target.policies))
    (mac,) = [s for _, doc in policies for s in doc["Statement"] if s.get("Sid") == "LocalBeaconKey"]
    edit(mac)
    changed = dataclasses.replace(target, policies=tuple(policies))
    others = tuple(changed if r is target else r for r in view.roles)
    return role_access(changed, dataclasses.replace(view, roles=others, cache={}))


def test_a_wider_beacon_grant_is_named_a_missing_algorithm_is_held_by_the_key_policy(view: DeploymentView) -> None:
    # The beacon key's policy also requires HMAC_SHA_256: dropping it from the role alone changes nothing.
    assert _edited_writer(view, lambda mac: mac.pop("Condition")).failure() is None
    # Any beacon key: another region's is beyond the contract (no cross-region KMS call).
    wide = _edited_writer(view, lambda mac: mac.update(Resource="*"))
    assert ("kms:GenerateMac", _beacon_key(view, "us-east-2")) in {(a.action, a.target.arn) for a in wide.beyond}
    assert "the application writer's role in us-west-1" in (wide.failure() or "")


def test_discovery_publishes_the_beacon_fields_and_the_regions_beacon_key(app: Synthesized) -> None:
    for region, stack in app.stacks.functions.items():
        params = {
            p["Properties"]["Name"]: p["Properties"]["Value"]
            for p in resources(app.raw(stack), "AWS::SSM::Parameter").values()
        }
        path = discovery_path("MrkToolkit", region)
        assert params[f"{path}/{PARAM_BEACON_FIELDS}"] == "ssn:24:digits,card_number:16:exact", region
        assert f"{path}/{PARAM_BEACON_KEY_ARN}" in params, region
        assert len(params) <= 10, sorted(params)  # one GetParametersByPath page


def test_without_application_roles_no_beacon_parameters(tenant_beacons_app: Synthesized) -> None:
    for stack in tenant_beacons_app.stacks.functions.values():
        names = [
            p["Properties"]["Name"] for p in resources(tenant_beacons_app.raw(stack), "AWS::SSM::Parameter").values()
        ]
        assert not [n for n in names if n.endswith((PARAM_BEACON_FIELDS, PARAM_BEACON_KEY_ARN))], names
