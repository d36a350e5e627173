"""The Aurora store's cross-region VPC peering (a full mesh), in two stacks per region.

``Peering-<region>``: the connections this region requests (to each peer whose name sorts after its
own, cdk_constructs/vpc_peering.py), each peer's VPC id read from that region's Network stack.
``PeerRoutes-<region>``: this region's routes to every peer's range over the pair's connection, its id
read from the requester's Peering stack. Both sides of a pair need their routes, and a route names a
connection that another region's stack may create: routes in a later stack keep the graph's depth
the same whatever the number of regions (networks, connections, routes). Values cross regions as
weak references (``Fn::GetStackOutput``), as everywhere in the app (cdk.json): no custom resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Fn, Stack
from constructs import Construct

from cdk_constructs.vpc_peering import peering_connection, peering_output, requester, routes_to_peer
from stacks.network_stack import NetworkStack


class PeeringStack(Stack):
    """The connections ``region`` requests: to each peer of ``peers`` with ``requester(region, peer) == region``.
    Attribute: ``connections`` (peer region -> ``CfnVPCPeeringConnection``); one output per connection."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkStack,
        peers: Mapping[str, NetworkStack],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.connections = {}
        for peer, peer_network in peers.items():
            assert requester(self.region, peer) == self.region, (self.region, peer)
            self.add_stack_dependency(peer_network)
            connection = peering_connection(
                self,
                vpc_id=network.network.vpc.vpc_id,
                peer_region=peer,
                peer_vpc_id=peer_network.output_value("VpcId"),
            )
            CfnOutput(self, peering_output(peer), value=connection.attr_id)
            self.connections[peer] = connection

    def output_value(self, output_name: str) -> str:
        return Fn.get_stack_output(self.stack_name, output_name, self.region)


class PeerRoutesStack(Stack):
    """``region``'s routes to each peer's VPC range over the pair's connection (``peerings``: the
    requesters' stacks by region; ``peer_cidrs``: peer region -> range)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkStack,
        peer_cidrs: Mapping[str, str],
        peerings: Mapping[str, PeeringStack],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        for peer, cidr in peer_cidrs.items():
            owner = peerings[requester(self.region, peer)]
            other = peer if owner.region == self.region else self.region
            self.add_stack_dependency(owner)
            routes_to_peer(
                self,
                peer_region=peer,
                peer_cidr=cidr,
                route_table_ids=network.network.route_table_ids,
                connection_id=owner.output_value(peering_output(other)),
            )
