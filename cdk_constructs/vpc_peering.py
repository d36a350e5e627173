"""Cross-region VPC peering between the Aurora store's regions (a full mesh) and the routes over it.

A pair of regions has ONE peering connection, requested by the region whose name sorts first
(``requester``): the choice depends on the two names only, never on a region's place in the config,
so adding or removing a region leaves the other pairs' connections alone. Same account, so
CloudFormation accepts the request itself (no peer role: "If the requester and acceptor VPCs are in
the same account, the peering request is accepted without a peering role", AWS::EC2::VPCPeeringConnection).
Each side routes the other's VPC range over the connection, in every isolated route table.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnTag
from aws_cdk import aws_ec2 as ec2
from constructs import Construct


def requester(region: str, peer: str) -> str:
    """The region whose stack requests the pair's connection."""
    return min(region, peer)


def pascal(region: str) -> str:
    """us-west-1 -> UsWest1 (construct ids, output names)."""
    return "".join(part.capitalize() for part in region.split("-"))


def peering_output(peer: str) -> str:
    """The output of the requester's peering stack holding the connection id to ``peer``."""
    return f"PeeringTo{pascal(peer)}"


def peering_connection(
    scope: Construct, *, vpc_id: str, peer_region: str, peer_vpc_id: str
) -> ec2.CfnVPCPeeringConnection:
    """A connection from this stack's VPC to ``peer_vpc_id`` in ``peer_region`` (same account)."""
    return ec2.CfnVPCPeeringConnection(
        scope,
        f"ConnectionTo{pascal(peer_region)}",
        vpc_id=vpc_id,
        peer_vpc_id=peer_vpc_id,
        peer_region=peer_region,
        tags=[CfnTag(key="Name", value=f"records database peering to {peer_region}")],
    )


def routes_to_peer(
    scope: Construct, *, peer_region: str, peer_cidr: str, route_table_ids: Sequence[str], connection_id: str
) -> list[ec2.CfnRoute]:
    """``peer_cidr`` over the connection, in each route table (one per isolated subnet)."""
    return [
        ec2.CfnRoute(
            scope,
            f"To{pascal(peer_region)}{number}",
            route_table_id=route_table_id,
            destination_cidr_block=peer_cidr,
            vpc_peering_connection_id=connection_id,
        )
        for number, route_table_id in enumerate(route_table_ids, start=1)
    ]
