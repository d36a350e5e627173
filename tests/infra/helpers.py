"""Small readers over synthesized CloudFormation templates."""

from __future__ import annotations

from typing import Any


def resources(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == type_name}


def only(template: dict[str, Any], type_name: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(document["Statement"])


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    found = [s for s in statements(document) if s.get("Sid") == sid]
    assert len(found) == 1, f"expected one statement {sid}, found {len(found)}"
    return found[0]


def actions(stmt: dict[str, Any]) -> set[str]:
    return set(as_list(stmt.get("Action", [])))


def stack_output_ref(value: Any) -> dict[str, Any] | None:
    """The ``Fn::GetStackOutput`` (weak cross-stack reference) a value is, if it is one."""
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        return value["Fn::GetStackOutput"]
    return None


def output_value(template: dict[str, Any], output_name: str) -> Any:
    return template["Outputs"][output_name]["Value"]


def all_policy_documents(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM policy document in a template: role/inline policies and key policies."""
    docs: list[tuple[str, dict[str, Any]]] = []
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs.append((lid, props["PolicyDocument"]))
        elif res["Type"] == "AWS::IAM::Role":
            for p in props.get("Policies", []):
                docs.append((lid, p["PolicyDocument"]))
        elif res["Type"] in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey"):
            docs.append((lid, props["KeyPolicy"]))
    return docs


def iam_policy_documents(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Identity policies only (key policies use Resource "*" to mean "this key")."""
    key_types = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
    return [
        (lid, doc) for lid, doc in all_policy_documents(template) if template["Resources"][lid]["Type"] not in key_types
    ]
