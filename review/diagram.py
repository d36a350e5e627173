"""A Mermaid flowchart of the deployment, drawn from the assembly: regions, stacks, keys, table
replicas and functions, with the edges the templates define (replica key -> primary, replica ->
its SSE key, function -> what its role's policies allow, function -> the key of its log group)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from review.inventory import Inventory
from review.policy import as_list, matches, statements

if TYPE_CHECKING:
    from cloud_assembly.reader import CloudAssembly

_SHORT_KIND = {
    "multi-region key (primary)": "MRK primary",
    "multi-region key (replica)": "MRK replica",
    "table SSE key": "table SSE key",
    "cluster storage key": "storage key",
    "secrets key": "secrets key",
    "log group key": "logs key",
    "alarm topic key": "alarm topic key",
    "audit trail key": "trail key",
    "KMS key": "KMS key",
}


def _id(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


def _label(*lines: str) -> str:
    return '"' + "<br/>".join(line.replace('"', "#quot;") for line in lines if line) + '"'


def mermaid(assembly: CloudAssembly) -> str:
    """The diagram source (no ``` fences), deterministic for a given assembly."""
    return mermaid_from_inventory(Inventory(assembly))


def mermaid_from_inventory(inventory: Inventory) -> str:
    """Regions (subgraphs) holding their stacks' keys, functions and tables, then the edges:
    replica keys, table encryption, replication, and what each function's role may do to what."""
    lines = ["flowchart LR"]
    nodes: dict[str, str] = {}  # arn or path -> node id
    for region in inventory.regions:
        lines += _region_lines(inventory, region, nodes)
    edges = _structure_edges(inventory, nodes) | _access_edges(inventory, nodes)
    return "\n".join([*lines, *sorted(edges)]) + "\n"


def _region_lines(inventory: Inventory, region: str, nodes: dict[str, str]) -> list[str]:
    title = f"{region} (primary)" if region == inventory.primary_region else region
    lines = [f"  subgraph {_id('region', region)}[{_label(title)}]", "    direction TB"]
    for stack in sorted({s.name for s in inventory.assembly.stacks.values() if s.region == region}):
        body = _stack_body(inventory, region, stack, nodes)
        if body:
            lines += [f"    subgraph {_id('stack', stack)}[{_label(stack)}]", *body, "    end"]
    # Replicas of a global table defined in another region's stack sit in their own region.
    for table in inventory.tables_in(region):
        if table.arn not in nodes:
            owner = table.resource.stack.name
            lines.append(_table_node(table.region, table.name, table.arn, nodes, f"replica, in {owner}", indent=4))
    lines.append("  end")
    return lines


def _stack_body(inventory: Inventory, region: str, stack: str, nodes: dict[str, str]) -> list[str]:
    body = []
    for key in inventory.keys_in(region):
        if key.resource.stack.name == stack:
            node = _id("key", region, _relative(key.resource.path))
            nodes[key.arn] = node
            name = key.aliases[0] if key.aliases else _relative(key.resource.path)
            body.append(f"      {node}[{_label(name, _SHORT_KIND[key.kind])}]")
    for fn in inventory.functions:
        if fn.resource.stack.name == stack:
            node = _id("fn", region, _relative(fn.resource.path))
            nodes[fn.resource.path] = node
            body.append(f"      {node}([{_label(fn.label.removesuffix(f' ({region})'))}])")
    for table in inventory.tables_in(region):
        if table.resource.stack.name == stack:
            body.append(_table_node(table.region, table.name, table.arn, nodes, "global table"))
    return body


def _structure_edges(inventory: Inventory, nodes: dict[str, str]) -> set[str]:
    """Replica keys to their primary, tables to their SSE key, and replication between replicas."""
    edges: set[str] = set()
    for key in inventory.keys:
        primary = key.resource.properties.get("PrimaryKeyArn")
        if isinstance(primary, str) and primary in nodes:
            edges.add(f"  {nodes[key.arn]} -. replica of .-> {nodes[primary]}")
    by_name: dict[str, list[str]] = {}
    for table in inventory.tables:
        by_name.setdefault(f"{table.resource.stack.name}/{table.name}", []).append(table.arn)
        sse = inventory.key_for(table.sse_key, table.region)
        if sse and sse.arn in nodes:
            edges.add(f"  {nodes[table.arn]} -->|SSE| {nodes[sse.arn]}")
    for arns in by_name.values():
        ordered = sorted(arns, key=lambda a: (a.split(":")[3] != inventory.primary_region, a))
        for other in ordered[1:]:
            edges.add(f"  {nodes[ordered[0]]} <-. replication .-> {nodes[other]}")
    return edges


def _access_edges(inventory: Inventory, nodes: dict[str, str]) -> set[str]:
    """What each function's role allows on the keys and tables drawn (and the key of its logs)."""
    edges: set[str] = set()
    targets = [(k.arn, nodes[k.arn]) for k in inventory.keys] + [(t.arn, nodes[t.arn]) for t in inventory.tables]
    for fn in inventory.functions:
        source = nodes[fn.resource.path]
        role = next((r for r in inventory.roles if r.arn == fn.role_arn), None)
        allowed: dict[str, set[str]] = {}
        for _name, document in role.identity() if role else []:
            for stmt in statements(document):
                if stmt.get("Effect") != "Allow" or "NotResource" in stmt:
                    continue
                limit = _attribute_limit(stmt)
                for arn, node in targets:
                    if any(isinstance(r, str) and r != "*" and matches(r, arn) for r in as_list(stmt.get("Resource"))):
                        allowed.setdefault(node, set()).update(f"{a}{limit}" for a in as_list(stmt.get("Action")))
        for node, actions in allowed.items():
            edges.add(f"  {source} -->|{_edge_label(actions)}| {node}")
        if fn.log_key_arn and fn.log_key_arn in nodes:
            edges.add(f"  {source} -. logs .-> {nodes[fn.log_key_arn]}")
    return edges


def _relative(path: str) -> str:
    """A construct path without its stack (the first segment)."""
    return path.split("/", 1)[-1]


def _table_node(region: str, name: str, arn: str, nodes: dict[str, str], what: str, indent: int = 6) -> str:
    node = _id("table", region, name)
    nodes[arn] = node
    return f"{' ' * indent}{node}[({_label(name, what)})]"


def _attribute_limit(stmt: dict[str, Any]) -> str:
    """' of id/_version' for a statement limited to named DynamoDB attributes (a diagram must not
    show an attribute-limited read as a read of the whole item)."""
    for pairs in (stmt.get("Condition") or {}).values():
        for key, values in pairs.items():
            if key.lower() == "dynamodb:attributes":
                return " of " + "/".join(str(v) for v in as_list(values))
    return ""


def _edge_label(actions: Iterable[str]) -> str:
    return ", ".join(sorted(actions)).replace('"', "'")
