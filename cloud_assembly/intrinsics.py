"""Resolve the CloudFormation intrinsics the toolkit's templates use, and only those.

Supported: Ref (pseudo parameters and resources), Fn::GetAtt, Fn::Join, Fn::Sub (${Name} and
${Res.Attr}), Fn::Select, Fn::Split, Fn::GetAZs and Fn::GetStackOutput. Anything else is an error: this is
not a general CloudFormation engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


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
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
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

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
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
            if key.startswith("Fn::") or key == "Condition":
                raise UnsupportedTemplate(f"{self.stack_name}: intrinsic {key} is not supported by the emulator")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
