"""The Aurora PostgreSQL store's stacks: fine-grained invariants, on 2 and 3 regions.

Each cluster on its own region's storage key, secondaries joined to the global cluster, an isolated
network (no NAT, no internet gateway) with the endpoints the functions call, 5432 only from the
clients' security group, every function reading only its own secret, deletion protection.
"""

from __future__ import annotations

import json
from typing import Any

from cdk_constructs.encrypting_functions import (
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_SECRET_ARN,
    ENV_RECORD_STORE,
)
from stacks.config import AURORA_DEFAULT_ENGINE_VERSION
from tests.infra.helpers import actions, as_list, only, resources, stack_output_ref, statement, statements
from tests.infra.synth import Synthesized


def _stack_names(app: Synthesized, kind: str) -> dict[str, str]:
    return {r: f"{app.config.stack_prefix}-{kind}-{r}" for r in app.config.regions}


def _output_of(app: Synthesized, ref: dict[str, Any]) -> Any:
    """The value of the output a Fn::GetStackOutput names (in the producing stack's template)."""
    return app.templates[ref["StackName"]]["Outputs"][ref["OutputName"]]["Value"]


def _key_logical_id(app: Synthesized, value: Any, region: str, key_construct: str) -> str:
    """The key a value points to must be ``key_construct`` in the Keys stack of ``region``."""
    ref = stack_output_ref(value)
    assert ref is not None, f"expected a reference to {region}'s {key_construct}, got {value}"
    assert ref["Region"] == region and ref["StackName"] == f"{app.config.stack_prefix}-Keys-{region}", ref
    target = _output_of(app, ref)
    assert isinstance(target, dict) and target["Fn::GetAtt"][1] == "Arn", target
    logical_id = target["Fn::GetAtt"][0]
    assert logical_id.startswith(key_construct), (logical_id, key_construct)
    return logical_id


def test_stacks_per_region_and_no_table(aurora: Synthesized) -> None:
    app = aurora
    names = {a.stack_name for a in app.assembly.stacks}
    expected = set()
    for kind in ("Keys", "Network", "PeerRoutes", "Database", "Functions"):
        expected |= set(_stack_names(app, kind).values())
    # The region whose name sorts last requests no connection (its peers request theirs to it).
    expected |= {f"{app.config.stack_prefix}-Peering-{r}" for r in sorted(app.config.regions)[:-1]}
    assert names == expected | {f"{app.config.stack_prefix}-Audit"}  # the trail: the same for both stores
    assert app.stacks.table is None
    for tpl in app.templates.values():
        assert not resources(tpl, "AWS::DynamoDB::GlobalTable") and not resources(tpl, "AWS::DynamoDB::Table")


def test_every_cluster_is_encrypted_with_its_own_regions_storage_key(aurora: Synthesized) -> None:
    app = aurora
    for region, stack in app.stacks.databases.items():
        tpl = app.raw(stack)
        _, cluster = only(tpl, "AWS::RDS::DBCluster")
        props = cluster["Properties"]
        assert props["StorageEncrypted"] is True
        _key_logical_id(app, props["KmsKeyId"], region, "StorageKey")
        _, instance = only(tpl, "AWS::RDS::DBInstance")
        assert instance["Properties"]["EnablePerformanceInsights"] is True
        _key_logical_id(app, instance["Properties"]["PerformanceInsightsKMSKeyId"], region, "StorageKey")
        assert instance["Properties"]["PubliclyAccessible"] is False


def test_storage_and_secrets_keys_are_usable_only_through_their_service_in_their_region(aurora: Synthesized) -> None:
    app = aurora
    for region, stack in app.stacks.keys.items():
        tpl = app.raw(stack)
        keys = resources(tpl, "AWS::KMS::Key")
        storage = next(r for lid, r in keys.items() if lid.startswith("StorageKey"))
        secrets = next(r for lid, r in keys.items() if lid.startswith("SecretsKey"))
        assert not any(lid.startswith("TableKey") for lid in keys), "no DynamoDB table key for aurora"
        for key, sid, service in (
            (storage, "UseOnlyThroughRdsInThisAccount", "rds"),
            (secrets, "UseOnlyThroughSecretsManagerInThisAccount", "secretsmanager"),
        ):
            use = statement(key["Properties"]["KeyPolicy"], sid)
            via = use["Condition"]["StringEquals"]["kms:ViaService"]
            assert via == {"Fn::Join": ["", [f"{service}.{region}.", {"Ref": "AWS::URLSuffix"}]]}
            assert use["Condition"]["StringEquals"]["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
            assert key["Properties"]["EnableKeyRotation"] is True
            # Nobody but the administrators and the service path: no role principal, no wildcard.
            for stmt in statements(key["Properties"]["KeyPolicy"]):
                assert stmt["Principal"] != "*" and "NotPrincipal" not in stmt


def test_secondaries_join_the_global_cluster_by_name_and_the_primary_by_reference(aurora: Synthesized) -> None:
    app = aurora
    primary_tpl = app.raw(app.stacks.databases[app.config.primary_region])
    global_id, global_cluster = only(primary_tpl, "AWS::RDS::GlobalCluster")
    gprops = global_cluster["Properties"]
    assert gprops["StorageEncrypted"] is True and gprops["DeletionProtection"] is True
    assert gprops["EngineVersion"] == AURORA_DEFAULT_ENGINE_VERSION and gprops["Engine"] == "aurora-postgresql"
    _, primary = only(primary_tpl, "AWS::RDS::DBCluster")
    assert primary["Properties"]["GlobalClusterIdentifier"] == {"Ref": global_id}
    assert "{{resolve:secretsmanager:" in json.dumps(primary["Properties"]["MasterUserPassword"])
    for region in app.config.replica_regions:
        tpl = app.raw(app.stacks.databases[region])
        assert not resources(tpl, "AWS::RDS::GlobalCluster")
        _, cluster = only(tpl, "AWS::RDS::DBCluster")
        props = cluster["Properties"]
        assert props["GlobalClusterIdentifier"] == gprops["GlobalClusterIdentifier"]
        assert props["EngineVersion"] == gprops["EngineVersion"]
        assert not {"MasterUsername", "MasterUserPassword", "DatabaseName"} & set(props)
        assert "EnableGlobalWriteForwarding" not in props, "write forwarding is not offered (README)"
    # A secondary is deployed after the primary's stack (which creates the global cluster).
    deps = {a.stack_name: {d.id for d in a.dependencies} for a in app.assembly.stacks}
    for region in app.config.replica_regions:
        assert (
            app.stacks.databases[app.config.primary_region].stack_name in deps[app.stacks.databases[region].stack_name]
        )


def test_clusters_are_protected_backed_up_logged_and_retained(aurora: Synthesized) -> None:
    app = aurora
    for stack in app.stacks.databases.values():
        tpl = app.raw(stack)
        _, cluster = only(tpl, "AWS::RDS::DBCluster")
        props = cluster["Properties"]
        assert props["DeletionProtection"] is True
        assert props["BackupRetentionPeriod"] >= 7
        assert props["EnableCloudwatchLogsExports"] == ["postgresql"]
        assert props["EnableIAMDatabaseAuthentication"] is False  # decision: README
        assert cluster["DeletionPolicy"] == "Retain" and cluster["UpdateReplacePolicy"] == "Retain"
        _, parameters = only(tpl, "AWS::RDS::DBClusterParameterGroup")
        assert parameters["Properties"]["Family"] == "aurora-postgresql16"
        assert parameters["Properties"]["Parameters"]["rds.force_ssl"] == "1"
        _, instance = only(tpl, "AWS::RDS::DBInstance")
        assert instance["Properties"]["MonitoringInterval"] > 0


def test_network_is_isolated_no_nat_no_internet_gateway(aurora: Synthesized) -> None:
    app = aurora
    for region, stack in app.stacks.networks.items():
        tpl = app.raw(stack)
        for forbidden in (
            "AWS::EC2::NatGateway",
            "AWS::EC2::InternetGateway",
            "AWS::EC2::EgressOnlyInternetGateway",
            "AWS::EC2::VPCGatewayAttachment",
            "AWS::EC2::EIP",
            "AWS::EC2::Route",
        ):
            assert not resources(tpl, forbidden), (region, forbidden)
        subnets = resources(tpl, "AWS::EC2::Subnet")
        assert len(subnets) == 2
        assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
        # AZs picked at deploy time, not looked up at synth.
        assert [s["Properties"]["AvailabilityZone"] for s in subnets.values()] == [
            {"Fn::Select": [i, {"Fn::GetAZs": ""}]} for i in range(2)
        ]
        assert resources(tpl, "AWS::EC2::FlowLog")


def _group_ids(tpl: dict[str, Any]) -> dict[str, str]:
    groups = resources(tpl, "AWS::EC2::SecurityGroup")
    by_name = {}
    for lid in groups:
        for name in ("Clients", "Database", "Endpoints"):
            if f"Network{name}SecurityGroup" in lid:
                by_name[name] = lid
    assert set(by_name) == {"Clients", "Database", "Endpoints"}, sorted(groups)
    return by_name


def _gid(lid: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [lid, "GroupId"]}


def test_interface_endpoints_for_what_the_functions_call(aurora: Synthesized) -> None:
    app = aurora
    for region, stack in app.stacks.networks.items():
        tpl = app.raw(stack)
        endpoints = resources(tpl, "AWS::EC2::VPCEndpoint")
        services = sorted(e["Properties"]["ServiceName"] for e in endpoints.values())
        assert services == sorted(f"com.amazonaws.{region}.{s}" for s in ("kms", "logs", "secretsmanager", "xray"))
        groups = _group_ids(tpl)
        for endpoint in endpoints.values():
            props = endpoint["Properties"]
            assert props["VpcEndpointType"] == "Interface" and props["PrivateDnsEnabled"] is True
            assert props["SecurityGroupIds"] == [_gid(groups["Endpoints"])]


def test_security_groups_allow_only_5432_from_the_clients_and_443_to_the_endpoints(aurora: Synthesized) -> None:
    app = aurora
    for stack in app.stacks.networks.values():
        tpl = app.raw(stack)
        groups = _group_ids(tpl)
        ingress = [r["Properties"] for r in resources(tpl, "AWS::EC2::SecurityGroupIngress").values()]
        egress = [r["Properties"] for r in resources(tpl, "AWS::EC2::SecurityGroupEgress").values()]
        rule = lambda p: (p["GroupId"], p["IpProtocol"], p["FromPort"], p["ToPort"])  # noqa: E731
        assert sorted(((rule(p), p["SourceSecurityGroupId"]) for p in ingress), key=str) == sorted(
            [
                ((_gid(groups["Database"]), "tcp", 5432, 5432), _gid(groups["Clients"])),
                ((_gid(groups["Endpoints"]), "tcp", 443, 443), _gid(groups["Clients"])),
            ],
            key=str,
        )
        assert sorted(((rule(p), p["DestinationSecurityGroupId"]) for p in egress), key=str) == sorted(
            [
                ((_gid(groups["Clients"]), "tcp", 5432, 5432), _gid(groups["Database"])),
                ((_gid(groups["Clients"]), "tcp", 443, 443), _gid(groups["Endpoints"])),
            ],
            key=str,
        )
        peers = sorted(cidr for region, cidr in app.config.aurora.vpc_cidrs if region != stack.region)  # type: ignore[union-attr]
        for lid, group in resources(tpl, "AWS::EC2::SecurityGroup").items():
            props = group["Properties"]
            inline_in = [_cidr_rule(r) for r in props.get("SecurityGroupIngress", [])]
            inline_out = [_cidr_rule(r) for r in props.get("SecurityGroupEgress", [])]
            if lid == groups["Database"]:  # the peer regions' writers, from their VPC's range only, on 5432 only
                assert sorted(inline_in) == [("tcp", 5432, 5432, cidr) for cidr in peers], lid
            else:
                assert not inline_in, lid  # ingress only by the rules above
            if lid == groups["Clients"]:  # to the peer VPCs' clusters, 5432 only
                assert sorted(inline_out) == [("tcp", 5432, 5432, cidr) for cidr in peers], lid
            else:  # CDK's "no egress" placeholder only
                assert inline_out == [("icmp", 252, 86, "255.255.255.255/32")], lid


def _cidr_rule(rule: dict[str, Any]) -> tuple[str, int, int, str]:
    return (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIp"])


def _functions(app: Synthesized, region: str) -> dict[str, dict[str, Any]]:
    tpl = app.raw(app.stacks.functions[region])
    out = {}
    for lid, fn in resources(tpl, "AWS::Lambda::Function").items():
        kind = "writer" if lid.startswith("RecordsWriter") else "reader" if lid.startswith("RecordsReader") else None
        assert kind, lid
        out[kind] = fn
    return out


def _policy_of(tpl: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [
        r["Properties"]["PolicyDocument"]
        for lid, r in resources(tpl, "AWS::IAM::ManagedPolicy").items()
        if lid.startswith(prefix)
    ]
    assert len(found) == 1, prefix
    return found[0]


def test_functions_run_in_the_isolated_subnets_with_the_clients_group(aurora: Synthesized) -> None:
    app = aurora
    for region in app.config.regions:
        network_stack = app.stacks.networks[region].stack_name
        for fn in _functions(app, region).values():
            vpc = fn["Properties"]["VpcConfig"]
            (group,) = vpc["SecurityGroupIds"]
            ref = stack_output_ref(group)
            assert ref and ref["StackName"] == network_stack
            assert "NetworkClientsSecurityGroup" in _output_of(app, ref)["Fn::GetAtt"][0]
            assert len(vpc["SubnetIds"]) == 2
            for subnet in vpc["SubnetIds"]:
                target = _output_of(app, stack_output_ref(subnet))  # type: ignore[arg-type]
                assert "IsolatedSubnet" in target["Ref"]


def test_each_function_reads_only_its_own_secret_in_its_own_region(aurora: Synthesized) -> None:
    """The attacker's first try with a writer's role: the reader's or the master secret. Not granted."""
    app = aurora
    for region in app.config.regions:
        tpl = app.raw(app.stacks.functions[region])
        functions = _functions(app, region)
        secret_arns = {
            kind: fn["Properties"]["Environment"]["Variables"][ENV_DB_SECRET_ARN] for kind, fn in functions.items()
        }
        assert secret_arns["writer"] != secret_arns["reader"]
        for kind, arn in secret_arns.items():
            if region == app.config.primary_region:  # the secret itself, in this region
                assert stack_output_ref(arn)["Region"] == region  # type: ignore[index]
            else:  # its replica in this region
                assert f":secretsmanager:{region}:" in json.dumps(arn)
            assert f"records_{kind}" in json.dumps(_secret_output(app, arn, region))
            policy = _policy_of(tpl, f"Records{kind.capitalize()}AccessPolicy")
            read = statement(policy, "OwnDatabaseSecret")
            assert actions(read) == {"secretsmanager:GetSecretValue"}
            assert as_list(read["Resource"]) == [arn]
            decrypt = statement(policy, "DecryptOwnSecretThroughSecretsManager")
            assert actions(decrypt) == {"kms:Decrypt"}
            _key_logical_id(app, decrypt["Resource"], region, "SecretsKey")
            cond = decrypt["Condition"]["StringEquals"]
            assert cond["kms:EncryptionContext:SecretARN"] == arn
            assert cond["kms:ViaService"] == {
                "Fn::Join": ["", [f"secretsmanager.{region}.", {"Ref": "AWS::URLSuffix"}]]
            }
            every_action = {a for s in statements(policy) for a in actions(s)}
            assert not {a for a in every_action if a.startswith(("rds", "secretsmanager:Put", "dynamodb"))}
            assert {a for a in every_action if a.startswith("secretsmanager:")} == {"secretsmanager:GetSecretValue"}


def _secret_output(app: Synthesized, arn: Any, region: str) -> Any:
    """The primary's secret a function's DB_SECRET_ARN is the regional copy of."""
    primary = app.raw(app.stacks.databases[app.config.primary_region])
    text = json.dumps(arn)
    if region == app.config.primary_region:
        ref = stack_output_ref(arn)
        assert ref is not None
        return primary["Resources"][_output_of(app, ref)["Ref"]]["Properties"]["Name"]
    # A secondary: arn:<partition>:secretsmanager:<region>:<account>:secret:<the primary's WriterSecretId/...>
    assert "WriterSecretId" in text or "ReaderSecretId" in text, text
    output = "WriterSecretId" if "WriterSecretId" in text else "ReaderSecretId"
    select = primary["Outputs"][output]["Value"]["Fn::Select"]
    lid = select[1]["Fn::Split"][1]["Ref"]
    return primary["Resources"][lid]["Properties"]["Name"]


def test_role_secrets_are_replicated_to_every_secondary_on_that_regions_key(aurora: Synthesized) -> None:
    app = aurora
    tpl = app.raw(app.stacks.databases[app.config.primary_region])
    secrets = {r["Properties"]["Name"]: r["Properties"] for r in resources(tpl, "AWS::SecretsManager::Secret").values()}
    prefix = f"{app.config.stack_prefix}/aurora/"
    assert set(secrets) == {f"{prefix}records_admin", f"{prefix}records_writer", f"{prefix}records_reader"}
    assert "ReplicaRegions" not in secrets[f"{prefix}records_admin"], "the master secret stays in the primary"
    for name in ("records_writer", "records_reader"):
        props = secrets[prefix + name]
        _key_logical_id(app, props["KmsKeyId"], app.config.primary_region, "SecretsKey")
        replicas = {r["Region"]: r["KmsKeyId"] for r in props["ReplicaRegions"]}
        assert set(replicas) == set(app.config.replica_regions)
        for region, key in replicas.items():
            _key_logical_id(app, key, region, "SecretsKey")


def test_writers_use_the_global_writer_endpoint_readers_their_regions_reader_endpoint(aurora: Synthesized) -> None:
    """In every region the writer uses the global database's writer endpoint (it always names the
    current primary's writer), passed on by its own region's Database stack, the reader its own
    reader endpoint; nothing names the primary region."""
    app = aurora
    primary = app.stacks.databases[app.config.primary_region]
    assert _output_of(app, {"StackName": primary.stack_name, "OutputName": "GlobalWriterEndpoint"}) == {
        "Fn::GetAtt": ["GlobalCluster", "GlobalEndpoint.Address"]
    }
    for region in app.config.regions:
        database = app.stacks.databases[region].stack_name
        if region != app.config.primary_region:  # passed on from the primary's stack
            passed = _output_of(app, {"StackName": database, "OutputName": "GlobalWriterEndpoint"})
            assert stack_output_ref(passed) == {
                "StackName": primary.stack_name,
                "Region": app.config.primary_region,
                "OutputName": "GlobalWriterEndpoint",
            }
        for kind, fn in _functions(app, region).items():
            env = fn["Properties"]["Environment"]["Variables"]
            if kind == "writer":
                own = {"StackName": database, "Region": region, "OutputName": "GlobalWriterEndpoint"}
                assert stack_output_ref(env[ENV_DB_HOST]) == own
            expected_attr = "ReadEndpoint.Address"
            assert env[ENV_RECORD_STORE] == "aurora-postgresql"
            assert env[ENV_DB_NAME] == app.config.aurora.database_name  # type: ignore[union-attr]
            assert not [k for k in env if "FORWARD" in k], "write forwarding is not offered (README)"
            assert "DB_PRIMARY_REGION" not in env, "the primary region moves: no function is told it"
            assert env["RECORDS_TABLE_NAME"] == "mrk_toolkit_records"
            hosts = [(ENV_DB_HOST, expected_attr)] if kind == "reader" else []
            for name, attr in (*hosts, (ENV_DB_PORT, "Endpoint.Port")):
                ref = stack_output_ref(env[name])
                assert ref and ref["StackName"] == database and ref["Region"] == region, (name, env[name])
                assert _output_of(app, ref)["Fn::GetAtt"][1] == attr


def _peer_routes(app: Synthesized, region: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(app.raw(app.stacks.peer_routes[region]), "AWS::EC2::Route").values()]


def test_vpcs_are_peered_in_a_full_mesh_each_pair_once_same_account(aurora: Synthesized) -> None:
    app = aurora
    regions = app.config.regions
    cidrs = dict(app.config.aurora.vpc_cidrs)  # type: ignore[union-attr]
    assert len(set(cidrs.values())) == len(regions), "distinct ranges: peering refuses overlapping VPCs"
    pairs = []
    for region, stack in app.stacks.peerings.items():
        for lid, connection in resources(app.raw(stack), "AWS::EC2::VPCPeeringConnection").items():
            props = connection["Properties"]
            peer = props["PeerRegion"]
            assert region < peer, "the pair's region whose name sorts first requests it"
            pairs.append((region, peer))
            # Same account: accepted by CloudFormation without a peer role (no PeerOwnerId, no PeerRoleArn).
            assert not {"PeerOwnerId", "PeerRoleArn"} & set(props), lid
            assert stack_output_ref(props["PeerVpcId"]) == {
                "StackName": app.stacks.networks[peer].stack_name,
                "Region": peer,
                "OutputName": "VpcId",
            }
            own = _output_of(app, stack_output_ref(props["VpcId"]))  # type: ignore[arg-type]
            assert own == {"Ref": only(app.raw(app.stacks.networks[region]), "AWS::EC2::VPC")[0]}
    n = len(regions)
    assert sorted(pairs) == sorted((a, b) for a in regions for b in regions if a < b) and len(pairs) == n * (n - 1) // 2


def test_every_isolated_route_table_routes_each_peer_range_over_the_pairs_connection(aurora: Synthesized) -> None:
    app = aurora
    cidrs = dict(app.config.aurora.vpc_cidrs)  # type: ignore[union-attr]
    for region in app.config.regions:
        network = app.raw(app.stacks.networks[region])
        tables = sorted(resources(network, "AWS::EC2::RouteTable"))
        assert len(tables) == 2
        routes = _peer_routes(app, region)
        found = set()
        for route in routes:
            table = _output_of(app, stack_output_ref(route["RouteTableId"]))["Ref"]  # type: ignore[arg-type]
            connection = stack_output_ref(route["VpcPeeringConnectionId"])
            assert connection is not None
            peer = next(p for p, c in cidrs.items() if c == route["DestinationCidrBlock"] and p != region)
            requester = min(region, peer)
            assert connection["StackName"] == app.stacks.peerings[requester].stack_name
            assert connection["Region"] == requester
            lid = _output_of(app, connection)["Fn::GetAtt"][0]
            props = resources(app.raw(app.stacks.peerings[requester]), "AWS::EC2::VPCPeeringConnection")[lid]
            assert props["Properties"]["PeerRegion"] == max(region, peer)
            assert set(route) == {"RouteTableId", "DestinationCidrBlock", "VpcPeeringConnectionId"}
            found.add((table, peer))
        assert found == {(t, p) for t in tables for p in app.config.regions if p != region}
        assert len(routes) == len(found)


def test_nothing_opens_the_network_to_the_internet(aurora: Synthesized) -> None:
    """The peering opens 5432 between the regions' VPC ranges, nothing wider: no 0.0.0.0/0 in any route
    or rule, no gateway (test_network_is_isolated_no_nat_no_internet_gateway)."""
    app = aurora
    for name, tpl in app.templates.items():
        text = json.dumps(tpl.get("Resources", {}))
        assert "0.0.0.0/0" not in text and "::/0" not in text, name
        for lid, route in resources(tpl, "AWS::EC2::Route").items():
            assert "GatewayId" not in route["Properties"] and "NatGatewayId" not in route["Properties"], lid


def test_kms_use_is_the_same_as_with_dynamodb(aurora: Synthesized) -> None:
    """Writer: only kms:GenerateDataKey, reader: only kms:Decrypt, on the LOCAL MRK, with the record context."""
    app = aurora
    context = {"purpose": "mrk-toolkit:record", "table": "mrk_toolkit_records", "schema": "1"}
    for region in app.config.regions:
        tpl = app.raw(app.stacks.functions[region])
        for kind, action in (("writer", "kms:GenerateDataKey"), ("reader", "kms:Decrypt")):
            policy = _policy_of(tpl, f"Records{kind.capitalize()}AccessPolicy")
            key = statement(policy, "LocalMultiRegionKey")
            assert actions(key) == {action}
            _key_logical_id(app, key["Resource"], region, "RecordsKey")
            assert key["Condition"]["StringEquals"] == {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
            other_kms = {a for s in statements(policy) if s.get("Sid") != "LocalMultiRegionKey" for a in actions(s)}
            assert other_kms & {"kms:GenerateDataKey", "kms:Encrypt"} == set()
            if kind == "writer":
                assert [s["Sid"] for s in statements(policy) if "kms:Decrypt" in actions(s)] == [
                    "DecryptOwnSecretThroughSecretsManager"
                ]


def test_mrk_policies_match_the_dynamodb_store_but_for_the_table_name(
    aurora_app: Synthesized, default_app: Synthesized
) -> None:
    for region in default_app.config.regions:
        dynamo = default_app.raw(default_app.stacks.keys[region])
        aurora = aurora_app.raw(aurora_app.stacks.keys[region])
        lid = next(
            lid
            for lid in resources(dynamo, "AWS::KMS::Key") | resources(dynamo, "AWS::KMS::ReplicaKey")
            if lid.startswith("RecordsKey")
        )
        expected = json.dumps(dynamo["Resources"][lid]).replace('"mrk-toolkit-records"', '"mrk_toolkit_records"')
        assert json.dumps(aurora["Resources"][lid]) == expected


def test_schema_setup_runs_db_setup_in_the_primary_vpc(aurora_app: Synthesized) -> None:
    app = aurora_app
    tpl = app.raw(app.stacks.databases[app.config.primary_region])
    setup = [r for lid, r in resources(tpl, "AWS::Lambda::Function").items() if lid.startswith("SchemaSetupFunction")]
    assert len(setup) == 1
    props = setup[0]["Properties"]
    assert props["Handler"] == "db_setup.handler"
    assert props["VpcConfig"]["SecurityGroupIds"]
    env = props["Environment"]["Variables"]
    assert set(env) == {
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_MASTER_SECRET_ARN",
        "DB_WRITER_SECRET_ARN",
        "DB_READER_SECRET_ARN",
        "RECORDS_TABLE_NAME",
        "SENSITIVE_FIELDS",
    }
    (_schema_id, schema) = only(tpl, "Custom::RecordsSchema")
    instance_id, _ = only(tpl, "AWS::RDS::DBInstance")
    assert instance_id in as_list(schema["DependsOn"])
    assert schema["Properties"]["RECORDS_TABLE_NAME"] == "mrk_toolkit_records"
    # Its role reads the three secrets and nothing else of Secrets Manager.
    policy = _policy_of(tpl, "SchemaSetupAccessPolicy")
    read = statement(policy, "OwnDatabaseSecret")
    assert len(as_list(read["Resource"])) == 3


def test_outputs_the_emulator_reads(aurora: Synthesized) -> None:
    app = aurora
    for region, stack in app.stacks.databases.items():
        outputs = app.raw(stack)["Outputs"]
        expected = {
            "GlobalClusterIdentifier",
            "ClusterIdentifier",
            "ClusterEndpoint",
            "ClusterReadEndpoint",
            "ClusterPort",
            "DatabaseName",
            "WriterSecretArn",
            "ReaderSecretArn",
        }
        if region == app.config.primary_region:
            expected |= {"MasterSecretArn", "WriterSecretId", "ReaderSecretId"}
        assert expected <= set(outputs), sorted(outputs)
        keys = app.raw(app.stacks.keys[region])["Outputs"]
        assert {"RecordsKeyArn", "StorageKeyArn", "SecretsKeyArn"} <= set(keys)


def test_every_database_secret_rotates_with_our_function_scoped_to_those_secrets(aurora_app: Synthesized) -> None:
    """README "Secret rotation": a schedule per secret (the configured days), our rotation function in the
    VPC, a role on exactly the three secrets, and only Secrets Manager may invoke it, per secret ARN."""
    app = aurora_app
    tpl = app.raw(app.stacks.databases[app.config.primary_region])
    secrets = {lid: {"Ref": lid} for lid in resources(tpl, "AWS::SecretsManager::Secret")}
    assert len(secrets) == 3
    (function_id, function) = next(
        (lid, r) for lid, r in resources(tpl, "AWS::Lambda::Function").items() if lid.startswith("SecretRotation")
    )
    assert function["Properties"]["Handler"] == "rotation.handler"
    assert function["Properties"]["VpcConfig"]["SecurityGroupIds"]
    arn = {"Fn::GetAtt": [function_id, "Arn"]}
    schedules = resources(tpl, "AWS::SecretsManager::RotationSchedule").values()
    assert sorted(json.dumps(s["Properties"]["SecretId"]) for s in schedules) == sorted(
        json.dumps(v) for v in secrets.values()
    )
    for schedule in schedules:
        props = schedule["Properties"]
        assert props["RotationLambdaARN"] == arn
        assert props["RotationRules"] == {"AutomaticallyAfterDays": app.config.aurora.secret_rotation_days}
        assert props["RotateImmediatelyOnUpdate"] is False
        assert "HostedRotationLambda" not in props
    permissions = resources(tpl, "AWS::Lambda::Permission").values()
    assert sorted(json.dumps(p["Properties"]["SourceArn"]) for p in permissions) == sorted(
        json.dumps(v) for v in secrets.values()
    )
    for permission in permissions:
        props = permission["Properties"]
        assert props["Principal"] == "secretsmanager.amazonaws.com"
        assert props["FunctionName"] == arn and props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    attachments = resources(tpl, "AWS::SecretsManager::SecretTargetAttachment").values()
    assert sorted(json.dumps(a["Properties"]["SecretId"]) for a in attachments) == sorted(
        json.dumps(v) for v in secrets.values()
    )
    policy = _policy_of(tpl, "SecretRotationAccessPolicy")
    rotate = statement(policy, "RotateDatabaseSecrets")
    assert actions(rotate) == {
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    }
    assert sorted(json.dumps(r) for r in as_list(rotate["Resource"])) == sorted(json.dumps(v) for v in secrets.values())
    key_use = statement(policy, "SecretsKeyThroughSecretsManager")
    assert actions(key_use) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert "*" not in json.dumps([s.get("Resource") for s in statements(policy) if s["Sid"] != "OwnLogGroup"])
    # Each secret names what a login needs beyond the attachment's host/port/engine.
    for secret in resources(tpl, "AWS::SecretsManager::Secret").values():
        template = json.loads(secret["Properties"]["GenerateSecretString"]["SecretStringTemplate"])
        assert template["dbname"] == app.config.aurora.database_name
