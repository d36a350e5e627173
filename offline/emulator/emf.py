"""EMULATION of CloudWatch Logs' metric extraction from embedded metric format (EMF) log lines.

CloudWatch Logs turns each log event that is an EMF document into metric data points: for each
directive in ``_aws.CloudWatchMetrics``, each metric it names and each dimension set it lists, one
data point whose dimensions are the root values of the set's keys and whose value is the root
value of the metric. A document that breaks the specification (a missing root value, a dimension
value that is not a string, a value that is not a number) yields no metric at all; here it is an
error, so that a broken metric line fails a test instead of vanishing silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class EmfError(ValueError):
    pass


@dataclass(frozen=True)
class Datum:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    value: float
    unit: str
    timestamp_ms: int

    def dimension_map(self) -> dict[str, str]:
        return dict(self.dimensions)


def is_emf(line: str) -> bool:
    return line.startswith("{") and '"_aws"' in line and '"CloudWatchMetrics"' in line


def parse_document(document: dict[str, Any]) -> list[Datum]:
    meta = document.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("Timestamp"), int):
        raise EmfError("_aws.Timestamp must be an integer (epoch milliseconds)")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        raise EmfError("_aws.CloudWatchMetrics must be a non-empty list")
    out: list[Datum] = []
    for directive in directives:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not namespace:
            raise EmfError(f"a directive without a Namespace: {directive}")
        for metric in directive.get("Metrics", []):
            name = metric.get("Name")
            value = document.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EmfError(f"metric {name!r} has no numeric root value (got {value!r})")
            for dimension_set in directive.get("Dimensions", [[]]):
                dims = []
                for key in dimension_set:
                    if not isinstance(document.get(key), str):
                        raise EmfError(f"dimension {key!r} of {name!r} has no string root value")
                    dims.append((key, document[key]))
                out.append(
                    Datum(
                        namespace,
                        name,
                        tuple(sorted(dims)),
                        float(value),
                        metric.get("Unit", "None"),
                        meta["Timestamp"],
                    )
                )
    return out


def extract(lines: Iterable[str]) -> list[Datum]:
    """Every data point the EMF lines among ``lines`` carry (other log lines are ignored)."""
    out: list[Datum] = []
    for line in lines:
        text = line.strip()
        if not is_emf(text):
            continue
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise EmfError(f"an EMF line that is not JSON: {error}") from None
        out += parse_document(document)
    return out
