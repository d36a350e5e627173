"""Beacons (issue 21): the writer's role may compute beacons (``kms:GenerateMac`` with HMAC_SHA_256 on its
own region's beacon key, as its contract says) and no other role may; checked as a whole by the policy
engine over every action and resource, and broken on purpose."""

from __future__ import annotations

import copy
import dataclasses

from cloud_assembly.role_access import DeploymentView, role_access
from lambda_src.record_crypto.settings import ENV_BEACON_KEY_ARN, Settings
from tests.infra.helpers import resources, stack_output_ref, statements
from tests.infra.synth import Synthesized
from tests.infra.test_function_contract import _resolved
from tests.infra.test_role_contracts import assert_exactly_its_contract, kinds, view_of


def mac_grants(view: DeploymentView) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(role kind, region) -> {(key ARN, variant)} of every GenerateMac/VerifyMac the engine allows."""
    out: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for role in view.roles:
        access = role_access(role, view)
        allowed = {
            (a.target.arn, a.variant.tag) for a in access.asked if a.allowed and a.action.lower().endswith("mac")
        }
        out[(role.stem, role.region)] = allowed
    return out


def test_every_role_with_beacons_may_do_exactly_its_contract(beacons_app: Synthesized) -> None:
    view = view_of(beacons_app)
    regions = beacons_app.config.regions
    assert kinds(view) == sorted((r, k) for r in regions for k in ("finder", "reader", "writer"))
    assert_exactly_its_contract(view)


def test_only_the_writer_and_finder_compute_beacons_with_their_regions_key(beacons_app: Synthesized) -> None:
    view = view_of(beacons_app)
    beacon_keys = {r.region: r.arn for r in view.resources if r.stem == "BeaconKey"}
    assert set(beacon_keys) == set(beacons_app.config.regions)
    computes = ("RecordsWriterRole", "RecordsFinderRole")
    for (stem, region), allowed in mac_grants(view).items():
        expected = {(beacon_keys[region], "mac-hmac-sha-256")} if stem in computes else set()
        assert allowed == expected, (stem, region)


def test_a_writer_policy_without_the_algorithm_condition_is_named(beacons_app: Synthesized) -> None:
    """Broken on purpose: the writer's GenerateMac statement loses its kms:MacAlgorithm condition, and
    the key policy too; the contract check names the extra request (another algorithm)."""
    view = view_of(beacons_app)
    role = next(r for r in view.roles if r.stem == "RecordsWriterRole")
    policies = []
    for name, document in role.policies:
        document = copy.deepcopy(document)
        for stmt in statements(document):
            if stmt.get("Sid") == "LocalBeaconKey":
                stmt.pop("Condition")
        policies.append((name, document))
    key_policies = {}
    for arn, policy in view.key_policies.items():
        policy = copy.deepcopy(policy)
        for stmt in statements(policy):
            if stmt.get("Sid") == "WritersComputeBeacons":
                stmt["Condition"]["StringEquals"].pop("kms:MacAlgorithm")
        key_policies[arn] = policy
    edited = dataclasses.replace(view, key_policies=key_policies, cache={})
    access = role_access(dataclasses.replace(role, policies=tuple(policies)), edited)
    failure = access.failure()
    assert failure is not None and "kms:GenerateMac" in failure and "HMAC_SHA_512" in failure, failure


def test_the_writer_environment_names_the_beacon_fields_and_its_regions_key(beacons_app: Synthesized) -> None:
    """The templates' environment passes the functions' own validation (test_function_contract's way)."""
    app = beacons_app
    for region, stack in app.stacks.functions.items():
        seen = {}
        for lid, function in resources(app.raw(stack), "AWS::Lambda::Function").items():
            variables = function["Properties"]["Environment"]["Variables"]
            settings = Settings.from_env(_resolved(region, variables))
            seen[lid.split("Function")[0]] = settings.beacon_fields
            if settings.beacon_fields:
                ref = stack_output_ref(variables[ENV_BEACON_KEY_ARN])
                assert ref is not None and "FnGetAttBeaconKey" in ref["OutputName"], ref
                assert ref["StackName"] == app.stacks.keys[region].stack_name
        fields = app.config.beacon_fields
        assert seen == {"RecordsWriter": fields, "RecordsReader": (), "RecordsFinder": fields}, (region, seen)


def test_the_audit_rules_expect_the_finders_decrypt_and_watch_the_beacon_key(beacons_app: Synthesized) -> None:
    app = beacons_app
    for region, stack in app.stacks.functions.items():
        tpl = app.raw(stack)
        rules = {
            r["Properties"]["Name"]: r["Properties"]["EventPattern"]
            for r in resources(tpl, "AWS::Events::Rule").values()
        }
        prefix = f"{app.config.stack_prefix}-{region}-"
        use = str(rules[f"{prefix}unexpected-key-use"])
        finder_role = next(lid for lid in resources(tpl, "AWS::IAM::Role") if lid.startswith("RecordsFinderRole"))
        assert f"'{finder_role}', 'Arn'" in use, region
        administration = str(rules[f"{prefix}key-administration"])
        assert "BeaconKey" in administration, region


def test_every_role_of_the_aurora_store_with_beacons_may_do_exactly_its_contract(
    aurora_beacons_app: Synthesized,
) -> None:
    """Synthesized with every nag pack and our rules; the finder reads as the reader's database role."""
    view = view_of(aurora_beacons_app)
    regions = aurora_beacons_app.config.regions
    assert {(r, "finder") for r in regions} <= set(kinds(view))
    assert_exactly_its_contract(view)
    for (stem, region), allowed in mac_grants(view).items():
        assert bool(allowed) == (stem in ("RecordsWriterRole", "RecordsFinderRole")), (stem, region)


def test_the_aurora_schema_setup_is_given_the_beacon_fields(aurora_beacons_app: Synthesized) -> None:
    app = aurora_beacons_app
    tpl = app.raw(app.stacks.databases[app.config.primary_region])
    setup = next(
        f for lid, f in resources(tpl, "AWS::Lambda::Function").items() if lid.startswith("SchemaSetupFunction")
    )
    assert setup["Properties"]["Environment"]["Variables"]["BEACON_FIELDS"] == "ssn:24:digits,card_number:16:exact"
