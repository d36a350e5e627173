"""Resolve the CloudFormation intrinsics the toolkit's templates use, and only those.

Supported: Ref (pseudo parameters and resources), Fn::GetAtt, Fn::Join, Fn::Sub (${Name} and
${Res.Attr}), Fn::Select, Fn::Split, Fn::GetAZs and Fn::GetStackOutput. Anything else is an error: this is
not a general CloudFormation engine. One resolver, three ways of using it: the emulator's (every
value known once deployed, anything else an error), the review's (symbolic physical names, see
review/assembly_view.py) and the nag rules' (before deployment only the region is known:
``render_before_deploy``). Pure functions of template JSON: no file is read here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def partition(region: str) -> str:
    """The ARN partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def url_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


class UnsupportedTemplate(ValueError):
    pass


class Resolver:
    def __init__(
        self,
        *,
        stack_name: str,
        region: str,
        account: str,
        physical_ids: Mapping[str, str],
        attributes: Mapping[str, Mapping[str, str]],
        stack_output: Callable[[str, str, str], str],
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.physical_ids = physical_ids
        self.attributes = attributes
        self.stack_output = stack_output
        self.parameters = parameters or {}

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": partition(self.region),
            "AWS::URLSuffix": url_suffix(self.region),
            "AWS::StackName": self.stack_name,
            "AWS::NoValue": None,
        }.get(name)

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise UnsupportedTemplate(f"{self.stack_name}: Ref to {name}, which is not deployed yet")

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            raise UnsupportedTemplate(f"{self.stack_name}: Fn::GetAtt {logical_id}.{attribute} is unknown") from None

    def unresolved(self, value: Any, error: UnsupportedTemplate) -> Any:
        """What an intrinsic that cannot be resolved becomes: an error here (the emulator deploys
        nothing it cannot resolve); a resolver that renders instead returns a placeholder."""
        raise error

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                try:
                    return self._intrinsic(key, arg)
                except UnsupportedTemplate as error:
                    return self.unresolved(value, error)
                except (TypeError, ValueError, IndexError) as error:
                    malformed = UnsupportedTemplate(f"{self.stack_name}: malformed {key} {json.dumps(arg)}: {error}")
                    return self.unresolved(value, malformed)
        return {k: self.resolve(v) for k, v in value.items()}

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical_id, attribute)
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(self.resolve(p)) for p in self.resolve(parts))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(sep)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::GetAZs":  # three zones named like AWS's (the VPC's subnets pick from them)
            region = str(self.resolve(arg)) or self.region
            return [f"{region}{zone}" for zone in "abc"]
        if key == "Fn::GetStackOutput":
            a = self.resolve(arg)
            return self.stack_output(a["StackName"], a["Region"], a["OutputName"])
        raise UnsupportedTemplate(f"{self.stack_name}: intrinsic {key} is not supported by the emulator")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                reference: dict[str, Any] = {"Fn::GetAtt": [logical_id, attribute]}
            else:
                reference = {"Ref": name}
            return str(self.resolve(reference))

        return _SUB_VARIABLE.sub(replace, text)


class _BeforeDeploy(Resolver):
    """Only what is known before deployment: the region (and so the partition and URL suffix)."""

    def __init__(self, region: str, unknown: str) -> None:
        super().__init__(
            stack_name="",
            region=region,
            account=unknown,
            physical_ids={},
            attributes={},
            stack_output=self._no_output,
        )
        self.unknown = unknown

    def _no_output(self, stack_name: str, region: str, output: str) -> str:
        raise UnsupportedTemplate(f"{stack_name}.{output} in {region} is not known before deployment")

    def pseudo(self, name: str) -> str | None:
        return super().pseudo(name) if name in ("AWS::Region", "AWS::Partition", "AWS::URLSuffix") else self.unknown

    def unresolved(self, value: Any, error: UnsupportedTemplate) -> Any:
        return self.unknown


def render_before_deploy(value: Any, region: str, unknown: str = "?") -> str:
    """A template value as text, as far as it can be told before deployment (``arn:aws:kms:us-east-2:?:key/?``):
    the region, partition and URL suffix are known, every other reference is ``unknown``."""
    rendered = _BeforeDeploy(region, unknown).resolve(value)
    return rendered if isinstance(rendered, str) else unknown


def references(value: Any) -> set[str]:
    """The logical ids a template value refers to (Ref, Fn::GetAtt and Fn::Sub variables)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str) and not v.startswith("AWS::"):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".", 1)[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found |= {m.split(".", 1)[0] for m in _SUB_VARIABLE.findall(text) if not m.startswith("AWS::")}
                if not isinstance(v, str):
                    found |= references(v[1])
            else:
                found |= references(v)
    elif isinstance(value, list):
        for v in value:
            found |= references(v)
    return found


def stack_outputs_read(value: Any) -> Iterator[tuple[str, str]]:
    """(region, stack name) of every other stack's output a template value reads (Fn::GetStackOutput)."""
    if isinstance(value, Mapping):
        ref = value.get("Fn::GetStackOutput")
        if isinstance(ref, Mapping) and isinstance(ref.get("Region"), str):
            yield ref["Region"], str(ref.get("StackName"))
        for item in value.values():
            yield from stack_outputs_read(item)
    elif isinstance(value, list):
        for item in value:
            yield from stack_outputs_read(item)
