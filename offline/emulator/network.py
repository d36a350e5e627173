"""EMULATION of the Aurora store's network paths and of the global writer endpoint's name.

Reachability is decided from the deployed templates alone (``cross_region_path``): a function in
region B reaches the cluster of region A (A != B) only if

* an AWS::EC2::VPCPeeringConnection joins B's VPC and A's VPC (same account, requested from the
  region of its ``VpcId``, ``PeerRegion`` the other's; non-overlapping ranges, or it fails);
* every route table of the function's subnets routes the cluster's subnets over that connection,
  and every route table of the cluster's subnets routes the function's subnets back over it;
* one of the function's security groups lets it out to the cluster's subnets on the cluster's port,
  and one of the cluster's security groups lets it in from the function's subnets on that port.

Within a region nothing changes (the clients -> database rules are checked by tests/infra).

The global writer endpoint is a DNS name. Each function resolves it through its own directory
(``MRK_TOOLKIT_RESOLVER_DIR``, read by the worker): ``<dir>/<name>`` links to the current writer's
socket directory when the function has a path to it, else to an empty directory (the connection
fails as a timeout does: the function answers ``DatabaseUnavailable``). The links are rewritten
after every deployment and whenever a cluster is promoted (switchover or failover), as Aurora moves
the name to the new primary's writer.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.emulator.deployment import DeployedResource, Deployment

RESOLVER_DIR_ENV = "MRK_TOOLKIT_RESOLVER_DIR"
_ALL_PROTOCOLS = ("-1", "all")


@dataclass(frozen=True)
class _Placed:
    region: str
    resource: DeployedResource

    @property
    def props(self) -> dict[str, Any]:
        return self.resource.properties


def _resources(d: Deployment, type_name: str) -> Iterator[_Placed]:
    for stack in d.stacks.values():
        for resource in stack.resources.values():
            if resource.type == type_name:
                yield _Placed(stack.region, resource)


def _by_id(d: Deployment, type_name: str) -> dict[str, _Placed]:
    return {p.resource.physical_id: p for p in _resources(d, type_name)}


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def _covers(cidr: str, subnets: Iterable[str]) -> bool:
    outer = _net(cidr)
    return all(_net(s).subnet_of(outer) for s in subnets)  # type: ignore[arg-type]


@dataclass
class Endpoint:
    """One end of a path: its region, VPC, subnets (id -> range) and security groups."""

    region: str
    vpc: str
    subnets: dict[str, str]
    groups: list[str]


def _endpoint(d: Deployment, region: str, subnet_ids: list[str], group_ids: list[str]) -> Endpoint:
    subnets = _by_id(d, "AWS::EC2::Subnet")
    found = {s: subnets[s] for s in subnet_ids if s in subnets}
    if not found:
        raise LookupError(f"no deployed subnet among {subnet_ids}")
    vpcs = {p.props.get("VpcId") for p in found.values()}
    if len(vpcs) != 1:
        raise LookupError(f"subnets {subnet_ids} are not in one VPC")
    return Endpoint(region, str(vpcs.pop()), {s: str(p.props["CidrBlock"]) for s, p in found.items()}, group_ids)


def function_endpoint(d: Deployment, region: str, function_name: str) -> Endpoint | None:
    """The function's VPC placement (None: not in a VPC)."""
    for fn in _resources(d, "AWS::Lambda::Function"):
        if fn.region == region and fn.resource.physical_id == function_name:
            vpc = fn.props.get("VpcConfig")
            if not vpc:
                return None
            return _endpoint(d, region, list(vpc.get("SubnetIds", [])), list(vpc.get("SecurityGroupIds", [])))
    return None


def cluster_endpoint(d: Deployment, region: str) -> tuple[Endpoint, int] | None:
    """The region's DBCluster placement (its subnet group's subnets, its security groups) and port; None
    when no deployed stack holds it (a retained cluster whose stack was deleted: its network is gone)."""
    cluster = next((c for c in _resources(d, "AWS::RDS::DBCluster") if c.region == region), None)
    subnet_group = (
        _by_id(d, "AWS::RDS::DBSubnetGroup").get(str(cluster.props.get("DBSubnetGroupName"))) if cluster else None
    )
    if cluster is None or subnet_group is None:
        return None
    placement = _endpoint(
        d, region, list(subnet_group.props["SubnetIds"]), list(cluster.props.get("VpcSecurityGroupIds", []))
    )
    return placement, int(cluster.props.get("Port", 5432))


def _peering(d: Deployment, a: Endpoint, b: Endpoint) -> tuple[str | None, str]:
    """The id of an active connection between the two VPCs, or None and why not."""
    vpcs = _by_id(d, "AWS::EC2::VPC")
    for pcx in _resources(d, "AWS::EC2::VPCPeeringConnection"):
        ends = {str(pcx.props.get("VpcId")), str(pcx.props.get("PeerVpcId"))}
        if ends != {a.vpc, b.vpc}:
            continue
        requester = vpcs.get(str(pcx.props.get("VpcId")))
        accepter = vpcs.get(str(pcx.props.get("PeerVpcId")))
        if requester is None or accepter is None or requester.region != pcx.region:
            return None, f"peering {pcx.resource.physical_id}: its VpcId is not a VPC of {pcx.region}"
        if pcx.props.get("PeerRegion", pcx.region) != accepter.region:
            return None, f"peering {pcx.resource.physical_id}: PeerRegion does not name {accepter.region}"
        if pcx.props.get("PeerOwnerId", d.account) != d.account:
            return None, f"peering {pcx.resource.physical_id}: another account must accept it (not emulated)"
        if _net(str(requester.props["CidrBlock"])).overlaps(_net(str(accepter.props["CidrBlock"]))):
            return None, f"peering {pcx.resource.physical_id} failed: the VPCs' ranges overlap"
        return pcx.resource.physical_id, ""
    return None, f"no VPC peering connection between {a.region}'s VPC and {b.region}'s"


def _routed(d: Deployment, source: Endpoint, target: Endpoint, pcx: str) -> str:
    """'' when every route table of ``source``'s subnets sends ``target``'s subnets over ``pcx``."""
    tables = {
        str(a.props.get("SubnetId")): str(a.props.get("RouteTableId"))
        for a in _resources(d, "AWS::EC2::SubnetRouteTableAssociation")
    }
    routes = [r.props for r in _resources(d, "AWS::EC2::Route")]
    for subnet in source.subnets:
        table = tables.get(subnet)
        if not any(
            r.get("RouteTableId") == table
            and r.get("VpcPeeringConnectionId") == pcx
            and _covers(str(r.get("DestinationCidrBlock", "")), target.subnets.values())
            for r in routes
        ):
            return f"no route in {source.region}'s route table {table} to {target.region}'s subnets over {pcx}"
    return ""


def _rules(d: Deployment, group: str, direction: str) -> list[dict[str, Any]]:
    """A security group's rules of one direction: inline, and the separate Ingress/Egress resources."""
    groups = _by_id(d, "AWS::EC2::SecurityGroup")
    inline = list(groups[group].props.get(f"SecurityGroup{direction}", [])) if group in groups else []
    kind = f"AWS::EC2::SecurityGroup{direction}"
    separate = [p.props for p in _resources(d, kind) if p.props.get("GroupId") == group]
    return inline + separate


def _admits(rule: dict[str, Any], port: int, ranges: Iterable[str]) -> bool:
    protocol = str(rule.get("IpProtocol", ""))
    if protocol in _ALL_PROTOCOLS:
        ports_ok = True
    else:
        ports_ok = protocol in ("tcp", "6") and int(rule.get("FromPort", -1)) <= port <= int(rule.get("ToPort", -1))
    return ports_ok and "CidrIp" in rule and _covers(str(rule["CidrIp"]), ranges)


def _allowed(d: Deployment, source: Endpoint, target: Endpoint, port: int) -> str:
    if not any(_admits(r, port, target.subnets.values()) for g in source.groups for r in _rules(d, g, "Egress")):
        return f"no security group of the {source.region} function lets it out to {target.region}'s subnets on {port}"
    if not any(_admits(r, port, source.subnets.values()) for g in target.groups for r in _rules(d, g, "Ingress")):
        return f"no security group of the {target.region} cluster admits {source.region}'s subnets on {port}"
    return ""


def cross_region_path(d: Deployment, function: Endpoint, cluster: Endpoint, port: int) -> str:
    """'' when the deployed templates give ``function`` a path to ``cluster`` on ``port``; else why not."""
    if function.region == cluster.region:
        return ""
    pcx, why = _peering(d, function, cluster)
    if pcx is None:
        return why
    return (
        _routed(d, function, cluster, pcx) or _routed(d, cluster, function, pcx) or _allowed(d, function, cluster, port)
    )


@dataclass
class EmulatedNetwork:
    """Each function's view of the global writer endpoint's name (one resolver directory per function)."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mrk-net-")))
    # function name -> (its region, cluster region -> '' (a path) or why there is none)
    paths: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # the global writer endpoints' names

    @property
    def unreachable(self) -> Path:
        path = self.root / "unreachable"
        path.mkdir(exist_ok=True)
        return path

    def resolver_dir(self, function_name: str) -> Path:
        path = self.root / "resolvers" / function_name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def survey(self, d: Deployment, cluster_regions: Iterable[str]) -> None:
        """Every VPC function's paths to every cluster, from the deployed templates."""
        clusters = {r: found for r in cluster_regions if (found := cluster_endpoint(d, r)) is not None}
        self.paths = {}
        for spec in d.functions:
            placement = function_endpoint(d, spec.region, spec.name)
            if placement is None:
                continue
            self.paths[spec.name] = (
                spec.region,
                {region: cross_region_path(d, placement, c, port) for region, (c, port) in clusters.items()},
            )

    def point(self, writer_socket_dir: Path, writer_region: str) -> None:
        """Each function's name of the global writer endpoint -> the writer's socket, where it has a path."""
        for function_name, (_region, paths) in self.paths.items():
            reachable = paths.get(writer_region) == ""
            target = writer_socket_dir if reachable else self.unreachable
            for name in self.names:
                link = self.resolver_dir(function_name) / name
                staged = link.with_name(f".{name}.new")
                staged.unlink(missing_ok=True)
                staged.symlink_to(target)
                os.replace(staged, link)  # atomic: a connection sees the old writer or the new one

    def why_not(self, function_name: str, cluster_region: str) -> str:
        return self.paths.get(function_name, ("", {}))[1].get(cluster_region, "not surveyed")

    def stop(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def install_resolver(directory: str) -> None:
    """In a function's process (the worker): psycopg resolves a host name through ``directory``, as
    the function's VPC resolver would; a name without an entry is left to libpq (and does not resolve)."""
    import psycopg

    original = psycopg.connect

    def connect(conninfo: str = "", **kwargs: Any) -> Any:
        host = kwargs.get("host")
        if isinstance(host, str) and host and not host.startswith("/"):
            entry = Path(directory) / host
            if entry.is_symlink():
                kwargs["host"] = str(entry.resolve())
        return original(conninfo, **kwargs)

    psycopg.connect = connect  # type: ignore[assignment]
