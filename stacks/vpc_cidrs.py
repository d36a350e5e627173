"""The Aurora store's VPC address ranges: one per region, distinct, so that the regions' VPCs can be peered.

A fixed table by region name (not by the region's place in the config), so adding or removing a region
never renumbers another; ``auroraVpcCidrs`` overrides it per region. us-east-2 (the default primary)
keeps 10.20.0.0/16, the range every region had before the VPCs were peered.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

FIELD = "auroraVpcCidrs"
# Two isolated /24 subnets (one per AZ) must fit: a VPC of /16 (AWS's largest) to /23.
PREFIX_RANGE = (16, 23)
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

DEFAULT_VPC_CIDRS: dict[str, str] = {
    region: f"10.{second}.0.0/16"
    for second, region in enumerate(
        (
            *("us-east-2", "us-west-1", "us-east-1", "us-west-2", "ca-central-1", "ca-west-1", "eu-west-1"),
            *("eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2"),
            *("ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2"),
            *("ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ap-south-1", "ap-south-2"),
            *("ap-east-1", "sa-east-1", "me-south-1", "me-central-1", "il-central-1", "af-south-1", "mx-central-1"),
            *("us-gov-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1", "ap-east-2", "ap-southeast-6"),
        ),
        start=20,
    )
}
# A region AWS adds later gets no default (the table above never changes its existing entries).

FIX = (
    f'Fix it in cdk.json ("mrk-toolkit:{FIELD}": {{"us-east-2": "10.20.0.0/16", ...}}), or on the command line: '
    f'-c \'mrk-toolkit:{FIELD}={{"us-east-2": "10.20.0.0/16"}}\''
)


class CidrError(ValueError):
    """The field (``auroraVpcCidrs`` or ``auroraVpcCidrs.<region>``), the value, what is allowed
    (stacks/config.py raises it as a ConfigError with ``FIX``)."""

    def __init__(self, where: str, value: object, allowed: str) -> None:
        super().__init__(where, value, allowed)
        self.where, self.value, self.allowed = where, value, allowed


_error = CidrError


def vpc_cidrs(value: Any, regions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``auroraVpcCidrs`` (region -> IPv4 CIDR; an object, or its JSON text from -c) over the default
    table: each region of the deployment gets a private /16-/23 range, and no two overlap."""
    given = _mapping(value)
    for region in given:
        if region not in regions:
            raise _error(f"{FIELD}.{region}", given[region], f"not a region of this deployment ({', '.join(regions)})")
    chosen = []
    for region in regions:
        text = given.get(region, DEFAULT_VPC_CIDRS.get(region))
        if text is None:
            raise _error(FIELD, dict(given), f"no VPC range for {region} (it has no default): give one")
        chosen.append((region, _network(f"{FIELD}.{region}", text)))
    for i, (region, network) in enumerate(chosen):
        for other, other_network in chosen[:i]:
            if network.overlaps(other_network):
                raise _error(
                    f"{FIELD}.{region}",
                    str(network),
                    f"overlaps {other}'s {other_network}: peered VPCs need distinct ranges",
                )
    return tuple((region, str(network)) for region, network in chosen)


def _mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise _error(FIELD, value, f"expected a JSON object: region -> CIDR ({exc.msg})") from None
    if not isinstance(value, dict):
        raise _error(FIELD, value, "expected an object: region -> IPv4 CIDR")
    return value


def _network(where: str, text: Any) -> ipaddress.IPv4Network:
    lo, hi = PREFIX_RANGE
    allowed = f"expected a private IPv4 range (10/8, 172.16/12, 192.168/16) of /{lo} to /{hi}, e.g. 10.21.0.0/16"
    try:
        network = ipaddress.ip_network(text, strict=True) if isinstance(text, str) else None
    except ValueError:
        network = None
    if not isinstance(network, ipaddress.IPv4Network) or not lo <= network.prefixlen <= hi:
        raise _error(where, text, allowed)
    if not any(network.subnet_of(private) for private in _PRIVATE):
        raise _error(where, text, allowed)
    return network
