"""The emulator's cross-region reachability (offline/emulator/network.py), decided from deployed resources
alone: one compliant deployment, then each piece an attacker or a bad edit could take away or widen."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from offline.emulator.deployment import DeployedResource, DeployedStack, Deployment
from offline.emulator.network import cluster_endpoint, cross_region_path, function_endpoint

A, B = "us-east-2", "us-west-1"  # the cluster's region, the function's region


def _stack(name: str, region: str, resources: dict[str, tuple[str, dict[str, Any]]]) -> DeployedStack:
    stack = DeployedStack(artifact=SimpleNamespace(name=name, region=region))  # type: ignore[arg-type]
    for lid, (type_name, props) in resources.items():
        stack.resources[lid] = DeployedResource(lid, type_name, lid, {}, props)
    return stack


def _network(region: str, cidr: str, subnet_cidrs: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {f"vpc-{region}": ("AWS::EC2::VPC", {"CidrBlock": cidr})}
    for n, subnet in enumerate(subnet_cidrs):
        out[f"subnet-{region}-{n}"] = ("AWS::EC2::Subnet", {"VpcId": f"vpc-{region}", "CidrBlock": subnet})
        out[f"rtb-{region}-{n}"] = ("AWS::EC2::RouteTable", {"VpcId": f"vpc-{region}"})
        out[f"assoc-{region}-{n}"] = (
            "AWS::EC2::SubnetRouteTableAssociation",
            {"SubnetId": f"subnet-{region}-{n}", "RouteTableId": f"rtb-{region}-{n}"},
        )
    return out


def _route(region: str, n: int, destination: str) -> tuple[str, dict[str, Any]]:
    props = {"RouteTableId": f"rtb-{region}-{n}", "DestinationCidrBlock": destination, "VpcPeeringConnectionId": "pcx"}
    return ("AWS::EC2::Route", props)


def _rule(cidr: str, port: int = 5432, protocol: str = "tcp") -> dict[str, Any]:
    return {"IpProtocol": protocol, "FromPort": port, "ToPort": port, "CidrIp": cidr}


def _deployment() -> Deployment:
    a = _network(A, "10.20.0.0/16", ["10.20.0.0/24", "10.20.1.0/24"])
    a["sg-db"] = ("AWS::EC2::SecurityGroup", {"SecurityGroupIngress": [_rule("10.21.0.0/16")]})
    a["subnets"] = ("AWS::RDS::DBSubnetGroup", {"SubnetIds": ["subnet-us-east-2-0", "subnet-us-east-2-1"]})
    a["cluster"] = ("AWS::RDS::DBCluster", {"DBSubnetGroupName": "subnets", "VpcSecurityGroupIds": ["sg-db"]})
    a["pcx"] = (
        "AWS::EC2::VPCPeeringConnection",
        {"VpcId": "vpc-us-east-2", "PeerVpcId": "vpc-us-west-1", "PeerRegion": B},
    )
    a |= {f"to-b-{n}": _route(A, n, "10.21.0.0/16") for n in range(2)}
    b = _network(B, "10.21.0.0/16", ["10.21.0.0/24", "10.21.1.0/24"])
    b["sg-fn"] = ("AWS::EC2::SecurityGroup", {"SecurityGroupEgress": [_rule("10.20.0.0/16")]})
    vpc = {"SubnetIds": ["subnet-us-west-1-0", "subnet-us-west-1-1"], "SecurityGroupIds": ["sg-fn"]}
    b["writer"] = ("AWS::Lambda::Function", {"VpcConfig": vpc})
    b |= {f"to-a-{n}": _route(B, n, "10.20.0.0/16") for n in range(2)}
    d = Deployment(account="111122223333", assembly=None)  # type: ignore[arg-type]
    d.stacks = {"A": _stack("A", A, a), "B": _stack("B", B, b)}
    return d


def _path(d: Deployment) -> str:
    function = function_endpoint(d, B, "writer")
    cluster = cluster_endpoint(d, A)
    assert function is not None and cluster is not None
    return cross_region_path(d, function, cluster[0], cluster[1])


def _props(d: Deployment, stack: str, lid: str) -> dict[str, Any]:
    return d.stacks[stack].resources[lid].properties


def test_the_templates_path_is_a_path() -> None:
    assert _path(_deployment()) == ""


BREAKS: dict[str, tuple[Callable[[Deployment], None], str]] = {
    "no peering": (lambda d: d.stacks["A"].resources.pop("pcx"), "no VPC peering connection"),
    "wrong PeerRegion": (lambda d: _props(d, "A", "pcx").update(PeerRegion="eu-west-1"), "PeerRegion"),
    "another account": (lambda d: _props(d, "A", "pcx").update(PeerOwnerId="999999999999"), "another account"),
    "overlapping ranges": (lambda d: _props(d, "B", "vpc-us-west-1").update(CidrBlock="10.20.0.0/15"), "overlap"),
    "no route out": (lambda d: d.stacks["B"].resources.pop("to-a-1"), "route table rtb-us-west-1-1"),
    "no route back": (lambda d: d.stacks["A"].resources.pop("to-b-0"), "route table rtb-us-east-2-0"),
    "route too narrow": (
        lambda d: _props(d, "B", "to-a-0").update(DestinationCidrBlock="10.20.0.0/24"),
        "route table rtb-us-west-1-0",
    ),
    "no egress": (lambda d: _props(d, "B", "sg-fn").update(SecurityGroupEgress=[]), "lets it out"),
    "ingress on another port": (
        lambda d: _props(d, "A", "sg-db").update(SecurityGroupIngress=[_rule("10.21.0.0/16", 3306)]),
        "admits",
    ),
    "ingress from another range": (
        lambda d: _props(d, "A", "sg-db").update(SecurityGroupIngress=[_rule("10.21.0.0/24")]),
        "admits",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_missing_piece_breaks_the_path(name: str) -> None:
    d = _deployment()
    edit, says = BREAKS[name]
    edit(d)
    why = _path(d)
    assert says in why, (name, why)


def test_a_cluster_no_stack_holds_has_no_path_and_same_region_needs_none() -> None:
    d = _deployment()
    del d.stacks["A"].resources["cluster"]
    assert cluster_endpoint(d, A) is None
    function = function_endpoint(_deployment(), B, "writer")
    assert function is not None
    assert cross_region_path(_deployment(), function, function, 5432) == ""
