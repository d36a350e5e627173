from __future__ import annotations

import pytest

from tests.infra.synth import Synthesized, context_for, synthesize

FOUR_REGIONS = {"primaryRegion": "us-east-2", "replicaRegions": ["us-west-1", "eu-west-1", "ap-southeast-2"]}


@pytest.fixture(scope="session")
def default_app() -> Synthesized:
    return synthesize(context_for())


@pytest.fixture(scope="session")
def four_region_app() -> Synthesized:
    return synthesize(context_for(**FOUR_REGIONS))


@pytest.fixture(scope="session", params=["default", "four-region"])
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    """Each invariant test runs on the default (2-region) and a 4-region deployment."""
    name = "default_app" if request.param == "default" else "four_region_app"
    return request.getfixturevalue(name)


AURORA = {"store": "aurora-postgresql"}
AURORA_THREE_REGIONS = {**AURORA, "replicaRegions": ["us-west-1", "eu-west-1"]}


@pytest.fixture(scope="session")
def aurora_app() -> Synthesized:
    return synthesize(context_for(**AURORA))


@pytest.fixture(scope="session")
def aurora_three_regions() -> Synthesized:
    return synthesize(context_for(**AURORA_THREE_REGIONS))


@pytest.fixture(scope="session", params=["aurora", "aurora-three-regions"])
def aurora(request: pytest.FixtureRequest) -> Synthesized:
    """Each Aurora invariant test runs on the default regions and on three regions."""
    return request.getfixturevalue("aurora_app" if request.param == "aurora" else "aurora_three_regions")


# Three tenants of different region sets, over three regions: every region, a replica region only
# (a key with no replica), and a primary outside the deployment's primary region.
TENANTS = {
    "replicaRegions": ["us-west-1", "eu-west-1"],
    "tenants": {
        "acme": {},
        "globex": {"regions": ["us-west-1"]},
        "initech": {"regions": ["us-east-2", "eu-west-1"], "primaryRegion": "eu-west-1"},
    },
}
# The same tenants on the Aurora store: globex has no key in the primary region (its writer in
# us-west-1 writes through the global writer endpoint).
AURORA_TENANTS = {**AURORA, **TENANTS}


@pytest.fixture(scope="session")
def tenants_app() -> Synthesized:
    return synthesize(context_for(**TENANTS))


# Beacons (issue 21) over three regions: a digits beacon and a casefold one.
BEACONS = {
    "replicaRegions": ["us-west-1", "eu-west-1"],
    "beaconFields": {"ssn": {"bits": 24, "normalize": "digits"}, "card_number": {"bits": 16}},
}
AURORA_BEACONS = {**AURORA, **BEACONS}


@pytest.fixture(scope="session")
def beacons_app() -> Synthesized:
    """Synthesized with every nag pack and our rules (raises on any unacknowledged finding)."""
    return synthesize(context_for(**BEACONS), nag=True)


@pytest.fixture(scope="session")
def aurora_beacons_app() -> Synthesized:
    """The Aurora store with beacons, with every nag pack and our rules."""
    return synthesize(context_for(**AURORA_BEACONS), nag=True)


# Tenants with beacons (issue 21): the three tenants over three regions, and the beacon fields; the finder
# decrypts a tenant's candidates in that tenant's session only.
TENANT_BEACONS = {**TENANTS, "beaconFields": BEACONS["beaconFields"]}


@pytest.fixture(scope="session")
def tenant_beacons_app() -> Synthesized:
    """Synthesized with every nag pack and our rules (raises on any unacknowledged finding)."""
    return synthesize(context_for(**TENANT_BEACONS), nag=True)
