"""Region outage: the operator's commands and what CloudFormation can change meanwhile.

- ``set_outage`` switches the emulator's outage of a region on or off (`python -m offline outage`
  / `recover` against `python -m offline up`; the gateway refuses every request to that region's
  endpoints with 503 ServiceUnavailable). It acts on the emulator only: there is nothing to switch
  in a real account.
- ``promote_key`` moves the primary of the multi-region key (``kms:UpdatePrimaryRegion``, called
  in the region of the CURRENT primary, as KMS requires), for a real account or the emulator.
- ``stack_plan`` reads the templates and says, for a set of regions that are down, which stacks
  CloudFormation can still update and why the others cannot.
- ``key_drift`` compares where the templates declare the primary with where KMS has it.

The drill that runs every step of the README's runbook on the emulator is offline/verification/drill.py.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cli_support import UsageError
from cloud_assembly.intrinsics import stack_outputs_read
from cloud_assembly.reader import CloudAssembly
from offline.emulator.gateway import CONTROL_PATH
from offline.emulator.replication import unavailable
from offline.runbooks.rotation import primary_key_arn

# One attempt: an operator's command against a region that does not answer says so at once.
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


def set_outage(
    endpoint_url: str, credentials: Any, region: str, *, down: bool, services: Iterable[str] = ()
) -> dict[str, list[str] | None]:
    """Start (``down``) or end the emulated outage of ``region`` (all its services, or only
    ``services``); returns the outages in force. ``credentials``: the emulator administrator's
    (botocore credentials), which the request is signed with."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    body = json.dumps({"region": region, "down": down, "services": sorted(services)})
    url = endpoint_url.rstrip("/") + CONTROL_PATH
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "emulator", region).add_auth(request)
    sent = urllib.request.Request(  # noqa: S310 - the emulator's endpoint
        request.url, data=body.encode(), headers=dict(request.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:  # noqa: S310
            return dict(json.loads(answer.read())["outages"])
    except OSError as error:
        raise UsageError(
            f"the emulator at {endpoint_url} did not answer ({error}): start it with `python -m offline up` and "
            "export what it prints"
        ) from None


# -- the multi-region key's primary ----------------------------------------------------------------
def _describe(kms: Any, key: str) -> dict[str, Any]:
    return dict(kms.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"])


Clients = Callable[[str, str], Any]  # (service, region) -> a boto3 client (one attempt per call)


def clients_of(session: Any, endpoint_url: str | None = None) -> Clients:
    """Client factory for the operator's commands: one attempt per call (ONE_ATTEMPT)."""
    return lambda service, region: session.client(
        service, region_name=region, endpoint_url=endpoint_url, config=ONE_ATTEMPT
    )


def promote_key(client: Clients, *, stack_prefix: str, to_region: str, home_region: str) -> str:
    """Make the replica in ``to_region`` the primary of the multi-region key; one line saying
    what happened, and the drift from the templates (which declare the primary in
    ``home_region``). KMS needs the call in the current primary's region: if that region does
    not answer, nothing can move the primary (UsageError saying so)."""
    here = primary_key_arn(client("cloudformation", to_region), stack_prefix, to_region)
    config = _describe(client("kms", to_region), here)
    current, primary_arn = config["PrimaryKey"]["Region"], config["PrimaryKey"]["Arn"]
    if current == to_region:
        return f"{to_region} already holds the primary of {here}; nothing to do. {drift_line(to_region, home_region)}"
    try:
        client("kms", current).update_primary_region(KeyId=primary_arn, PrimaryRegion=to_region)
    except (ClientError, BotoCoreError) as error:
        if not unavailable(error):
            raise
        raise UsageError(
            f"KMS in {current}, the region of the current primary, did not answer UpdatePrimaryRegion ({error}): KMS "
            f"accepts it only there, so the primary cannot move while {current} is down. Every replica keeps "
            "encrypting and decrypting meanwhile; retry when KMS in that region answers"
        ) from None
    after = _describe(client("kms", to_region), here)
    if after["PrimaryKey"]["Region"] != to_region:
        raise RuntimeError(f"UpdatePrimaryRegion returned, but DescribeKey in {to_region} still shows {after}")
    key_id = here.rsplit("/", 1)[1]
    return f"moved the primary of {key_id} from {current} to {to_region}. {drift_line(to_region, home_region)}"


def drift_line(actual_primary: str, home_region: str) -> str:
    if actual_primary == home_region:
        return f"No drift: the templates declare the primary in {home_region}, where KMS has it."
    return (
        f"DRIFT: the templates declare the primary in {home_region} (an AWS::KMS::Key there, AWS::KMS::ReplicaKey "
        f"in {actual_primary}); KMS has it in {actual_primary}. Do not deploy the keys stacks meanwhile, do not "
        "change primaryRegion (that would create a new key); reconcile with "
        f"`python -m offline promote-key --to {home_region}`"
    )


def key_drift(client: Clients, *, stack_prefix: str, region: str, home_region: str) -> tuple[str, str]:
    """(where KMS has the primary, the drift line), read in ``region`` (any region that answers)."""
    arn = primary_key_arn(client("cloudformation", region), stack_prefix, region)
    actual = _describe(client("kms", region), arn)["PrimaryKey"]["Region"]
    return actual, drift_line(actual, home_region)


# -- what CloudFormation can change while regions are down ------------------------------------------
@dataclass(frozen=True)
class StackImpact:
    stack: str
    region: str
    needs: dict[str, str]  # region -> why the stack's deployment needs it

    def blocked_by(self, down: Iterable[str]) -> list[str]:
        return [r for r in sorted(self.needs) if r in set(down)]

    def line(self, down: Iterable[str]) -> str:
        blocked = self.blocked_by(down)
        if not blocked:
            return f"CAN update    {self.stack} ({self.region}): needs only {', '.join(sorted(self.needs))}"
        why = "; ".join(f"{r}: {self.needs[r]}" for r in blocked)
        return f"CANNOT update {self.stack} ({self.region}): {why}"


def stack_needs(assembly: CloudAssembly, stack_name: str) -> StackImpact:
    """The regions an update of the stack needs, read from its template: its own region (the
    CloudFormation that runs it), every region whose stack outputs it reads (Fn::GetStackOutput:
    CloudFormation reads them at each deployment) and every replica region of a global table."""
    stack = assembly.stacks[stack_name]
    needs = {stack.region: "the stack's own region (CloudFormation there runs the update)"}
    for region, source in stack_outputs_read(stack.template):
        needs.setdefault(region, f"it reads outputs of {source} there (Fn::GetStackOutput, at every deployment)")
    for table in stack.resources("AWS::DynamoDB::GlobalTable").values():
        for replica in table.get("Properties", {}).get("Replicas", []):
            region = replica.get("Region")
            if isinstance(region, str):
                needs.setdefault(region, "a replica of its global table is there (managed from the stack's region)")
    return StackImpact(stack.name, stack.region, needs)


def stack_plan(assembly: CloudAssembly, down: Iterable[str]) -> list[str]:
    """One line per stack, in deployment order: can CloudFormation update it while ``down`` is down?"""
    down = sorted(set(down))
    return [stack_needs(assembly, s.name).line(down) for wave in assembly.waves() for s in wave]
