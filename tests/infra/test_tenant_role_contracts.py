"""The tenant-access roles and the function roles that assume them may do exactly their contracts
(cloud_assembly/contracts.py), decided by the one policy engine on the templates, for more than
one tenant configuration: a session tagged with a tenant may use that tenant's key with that
tenant's context, and nothing else (another tenant's key, another tenant's context, untagged);
only the function's own role may take such a session, and only tagging ``tenant`` alone.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from cloud_assembly.role_access import DeployedRole, DeploymentView, RoleAccess, role_access
from lambda_src.record_crypto.settings import TENANT_KEY
from tests.infra.conftest import AURORA_TENANTS, TENANT_BEACONS, TENANTS
from tests.infra.synth import Synthesized, context_for, synthesize
from tests.infra.test_role_contracts import assert_exactly_its_contract, kinds, view_of

# Three configurations: three tenants over three regions (tests/infra/conftest.py), the same with beacon
# fields (the finder's tenant-access role), and two tenants over two regions with one tenant homed in the
# replica region.
CONFIGURATIONS = {
    "three-tenants": TENANTS,
    "three-tenants-beacons": TENANT_BEACONS,
    "two-tenants": {"replicaRegions": ["us-west-1"], "tenants": {"a1": {"regions": ["us-west-1"]}, "b2": {}}},
}
USE = {
    "RecordsWriterTenantRole": "kms:GenerateDataKey",
    "RecordsReaderTenantRole": "kms:Decrypt",
    "RecordsFinderTenantRole": "kms:Decrypt",
}


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def app(request: pytest.FixtureRequest) -> Synthesized:
    return synthesize(context_for(**CONFIGURATIONS[request.param]))


@pytest.fixture(scope="module")
def view(app: Synthesized) -> DeploymentView:
    return view_of(app)


def tenants_in(app: Synthesized, region: str) -> list[str]:
    return [t.tenant_id for t in app.config.tenants if region in t.regions]


def key_tenant(view: DeploymentView, arn: str) -> str | None:
    return view.resource_tags.get(arn, {}).get(TENANT_KEY)


def test_every_role_of_a_tenant_deployment_may_do_exactly_its_contract(app: Synthesized, view: DeploymentView) -> None:
    functions = ("finder", "reader", "writer") if app.config.beacon_fields else ("reader", "writer")
    expected = [(r, k) for r in app.config.regions for k in functions]
    expected += [(r, f"tenant-{k}") for r in app.config.regions if tenants_in(app, r) for k in functions]
    assert kinds(view) == sorted(expected)
    assert_exactly_its_contract(view)


def _tenant_roles(view: DeploymentView) -> list[DeployedRole]:
    return [r for r in view.roles if r.stem in USE]


def test_a_tenants_session_uses_its_own_key_with_its_own_context_only(app: Synthesized, view: DeploymentView) -> None:
    for role in _tenant_roles(view):
        access = role_access(role, view)
        allowed = {
            (a.action, key_tenant(view, a.target.arn), a.variant.tenant, a.session) for a in access.asked if a.allowed
        }
        # Allowed: each tenant of the region, as its own session, its own key and context; nothing else.
        assert allowed == {(USE[role.stem], t, t, (TENANT_KEY, t)) for t in tenants_in(app, role.region)}, role
        refused = [a for a in access.asked if not a.allowed and a.action == USE[role.stem]]
        crossed = {
            (key_tenant(view, a.target.arn), a.variant.tenant, a.session[1] if a.session else None) for a in refused
        }
        for tenant in tenants_in(app, role.region):
            for other in (t for t in tenants_in(app, role.region) if t != tenant):
                assert (other, other, tenant) in crossed, "another tenant's key and context"
                assert (tenant, other, tenant) in crossed, "own key, another tenant's context"
                assert (other, tenant, tenant) in crossed, "another tenant's key, own context"
            assert (tenant, tenant, None) in crossed, "an untagged session"


def test_only_the_functions_own_role_takes_a_tenant_session_tagging_tenant_alone(view: DeploymentView) -> None:
    tenant_roles = {r.arn: r for r in _tenant_roles(view)}
    for role in view.roles:
        access = role_access(role, view)
        assumed = {
            (a.action, a.target.arn, a.variant.tag) for a in access.asked if a.allowed and a.action.startswith("sts:")
        }
        own = [
            arn
            for arn, r in tenant_roles.items()
            if r.region == role.region and r.stem == role.stem.replace("Role", "TenantRole")
        ]
        expected = {(action, arn, "session-tag") for arn in own for action in ("sts:AssumeRole", "sts:TagSession")}
        assert assumed == expected, role
        if own:  # untagged, or tagging another key as well: refused by the trust policy
            refused = {
                (a.target.arn, a.variant.tag) for a in access.asked if not a.allowed and a.action == "sts:AssumeRole"
            }
            assert {(own[0], ""), (own[0], "more-session-tags")} <= refused


# -- edits: each must be named -----------------------------------------------------------------
def _with_policy(view: DeploymentView, role: DeployedRole, edit: Any) -> RoleAccess:
    policies = copy.deepcopy(list(role.policies))
    for _, document in policies:
        for statement in document["Statement"]:
            edit(statement)
    changed = dataclasses.replace(role, policies=tuple(policies))
    others = tuple(changed if r is role else r for r in view.roles)
    return role_access(changed, dataclasses.replace(view, roles=others, cache={}))


def _drop_tenant_conditions(statement: dict[str, Any]) -> None:
    equals = statement.get("Condition", {}).get("StringEquals", {})
    for key in (f"aws:ResourceTag/{TENANT_KEY}", f"kms:EncryptionContext:{TENANT_KEY}"):
        equals.pop(key, None)


def test_a_tenant_role_without_its_tenant_conditions_is_named(app: Synthesized, view: DeploymentView) -> None:
    role = next(r for r in _tenant_roles(view) if len(tenants_in(app, r.region)) > 1)
    tenant, other = tenants_in(app, role.region)[:2]
    access = _with_policy(view, role, _drop_tenant_conditions)
    crossed = {(key_tenant(view, a.target.arn), a.variant.tenant, a.session) for a in access.beyond}
    assert (other, other, (TENANT_KEY, tenant)) in crossed
    failure = access.failure() or ""
    assert f"tenant-access role in {role.region} ({role.stack}/{role.logical_id}) may do" in failure
    assert f"as a session tagged {TENANT_KEY}=" in failure and "SessionTenantKeyOnly" in failure


def test_a_tenant_role_whose_resource_tag_condition_is_gone_still_keeps_tenants_apart(view: DeploymentView) -> None:
    """The key policies bind each tenant key to its tenant's context: the contract holds (defence in depth);
    the nag rule MrkToolkit-TEN2 and the main job's read-back name the missing condition."""
    role = _tenant_roles(view)[0]

    def drop_tag(statement: dict[str, Any]) -> None:
        statement.get("Condition", {}).get("StringEquals", {}).pop(f"aws:ResourceTag/{TENANT_KEY}", None)

    assert _with_policy(view, role, drop_tag).failure() is None


def test_a_trust_policy_open_to_the_other_function_or_without_the_tag_condition_is_named(view: DeploymentView) -> None:
    writer_tenant = next(r for r in _tenant_roles(view) if r.stem == "RecordsWriterTenantRole")
    reader = next(r for r in view.roles if r.stem == "RecordsReaderRole" and r.region == writer_tenant.region)
    writer = next(r for r in view.roles if r.stem == "RecordsWriterRole" and r.region == writer_tenant.region)
    trust = copy.deepcopy(view.trust_policies[writer_tenant.arn])
    trust["Statement"][0]["Principal"] = {"AWS": [writer.arn, reader.arn]}
    del trust["Statement"][0]["Condition"]
    edited = dataclasses.replace(view, trust_policies={**view.trust_policies, writer_tenant.arn: trust}, cache={})
    failure = role_access(reader, edited).failure() or ""
    assert f"sts:AssumeRole on {writer_tenant.stack}/RecordsWriterTenantRole ({writer_tenant.arn})" in failure
    assert "allowed by trust policy" in failure
    untagged = {(a.action, a.variant.tag) for a in role_access(writer, edited).beyond}
    assert {("sts:AssumeRole", ""), ("sts:AssumeRole", "more-session-tags")} <= untagged


@pytest.mark.parametrize("beacons", [False, True], ids=["tenants", "tenants-beacons"])
def test_every_role_of_an_aurora_tenant_deployment_may_do_exactly_its_contract(beacons: bool) -> None:
    extra = {"beaconFields": TENANT_BEACONS["beaconFields"]} if beacons else {}
    app = synthesize(context_for(**AURORA_TENANTS, **extra))
    view = view_of(app)
    assert {k for _, k in kinds(view)} >= {"tenant-reader", "tenant-writer", "schema-setup"}
    assert ("tenant-finder" in {k for _, k in kinds(view)}) is beacons
    assert not [k for _, k in kinds(view) if k.startswith("unknown")]
    assert_exactly_its_contract(view)


# -- the finder with tenants (issue 21) -------------------------------------------------------
@pytest.fixture(scope="module")
def beacons_view() -> tuple[Synthesized, DeploymentView]:
    app = synthesize(context_for(**TENANT_BEACONS))
    return app, view_of(app)


def test_a_finder_tenant_role_without_its_tenant_conditions_is_named(
    beacons_view: tuple[Synthesized, DeploymentView],
) -> None:
    """Who may find in tenant A must not decrypt tenant B's candidates: the finder's session for A that could
    use B's key with B's context is beyond its contract."""
    app, view = beacons_view
    role = next(
        r for r in _tenant_roles(view) if r.stem == "RecordsFinderTenantRole" and len(tenants_in(app, r.region)) > 1
    )
    tenant, other = tenants_in(app, role.region)[:2]
    access = _with_policy(view, role, _drop_tenant_conditions)
    crossed = {(key_tenant(view, a.target.arn), a.variant.tenant, a.session) for a in access.beyond}
    assert (other, other, (TENANT_KEY, tenant)) in crossed
    assert "SessionTenantKeyOnly" in (access.failure() or "")


def test_a_finder_decrypting_tenant_keys_with_its_own_role_is_named(
    beacons_view: tuple[Synthesized, DeploymentView],
) -> None:
    """The finder's own role decrypts nothing with tenants: a Decrypt on the tenant keys outside a tenant's
    session (every tenant's candidates with one set of rights) is beyond its contract."""
    app, view = beacons_view
    finder = next(r for r in view.roles if r.stem == "RecordsFinderRole" and len(tenants_in(app, r.region)) > 1)
    tenant_keys = [a for a, tags in view.resource_tags.items() if TENANT_KEY in tags and f":{finder.region}:" in a]
    assert tenant_keys

    def add_decrypt(statement: dict[str, Any]) -> None:
        if statement.get("Sid") == "LocalBeaconIndexes":
            statement["Action"] = ["dynamodb:Query", "kms:Decrypt"]
            statement["Resource"] = [statement["Resource"], *tenant_keys]

    access = _with_policy(view, finder, add_decrypt)
    beyond = {(a.action, key_tenant(view, a.target.arn)) for a in access.beyond}
    assert {("kms:Decrypt", t) for t in tenants_in(app, finder.region)} <= beyond, beyond
