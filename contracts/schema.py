"""Load `features.yml`, check it is well formed, and validate feature data against it by name."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONTRACT_PATH = Path(__file__).with_name("features.yml")

# Unit suffix each unit must end with; categorical and boolean features have their own suffixes.
UNIT_SUFFIXES: Mapping[str, str] = {
    "seconds": "_seconds",
    "minutes": "_minutes",
    "hours": "_hours",
    "days": "_days",
    "count": "_count",
    "ratio": "_ratio",
    "score": "_score",
    "code": "_code",
    "flag": "_flag",
}
# Contract dtype -> dbt `data_type`. These names mean the same on DuckDB and Spark.
DBT_DATA_TYPES: Mapping[str, str] = {
    "float64": "double",
    "int64": "bigint",
    "string": "string",
    "bool": "boolean",
}
NUMERIC_DTYPES = frozenset({"float64", "int64"})


class ContractViolation(ValueError):
    """Data or a contract file that breaks the feature contract; the message names feature, value and rule."""


@dataclass(frozen=True)
class Feature:
    """One feature column as the contract declares it."""

    name: str
    entity: str
    dtype: str
    unit: str
    nullable: bool
    description: str
    min: float | None = None
    max: float | None = None
    codes: tuple[str, ...] = ()

    @property
    def is_numeric(self) -> bool:
        """Whether the feature is a number (and so has a range and a reference distribution)."""
        return self.dtype in NUMERIC_DTYPES

    @property
    def dbt_data_type(self) -> str:
        """The `data_type` dbt's enforced contract checks."""
        return DBT_DATA_TYPES[self.dtype]

    def describe_rule(self) -> str:
        """The rule in one phrase, for error messages."""
        parts = [self.dtype, f"unit {self.unit}"]
        if self.is_numeric:
            parts.append(f"range [{self.min:g}, {self.max:g}]")
        if self.codes:
            parts.append(f"codes {list(self.codes)}")
        parts.append("nullable" if self.nullable else "not null")
        return ", ".join(parts)


@dataclass(frozen=True)
class Entity:
    """A feature table's owner: its dbt model and key columns."""

    name: str
    model: str
    keys: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class FeatureContract:
    """Every feature, grouped by entity, with a hash that versions the whole contract."""

    version: int
    entities: Mapping[str, Entity]
    features: tuple[Feature, ...]
    sha256: str
    _by_name: Mapping[str, Feature] = field(repr=False, compare=False, default_factory=dict)

    def __getitem__(self, name: str) -> Feature:
        try:
            return self._by_name[name]
        except KeyError:
            raise ContractViolation(f"feature {name!r} is not in the contract ({CONTRACT_PATH.name})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self, entity: str | None = None) -> list[str]:
        """Feature names in contract order, optionally of one entity."""
        return [f.name for f in self.features if entity is None or f.entity == entity]

    def for_entity(self, entity: str) -> list[Feature]:
        """The features one entity owns, in contract order."""
        return [f for f in self.features if f.entity == entity]

    def numeric(self) -> list[Feature]:
        """Features with a range and a reference distribution."""
        return [f for f in self.features if f.is_numeric]


def validate_values(feature: Feature, values: np.ndarray, source: str) -> None:
    """Raise ContractViolation for the first value of `values` that breaks `feature`'s contract."""
    if values.dtype == object:
        nulls = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values], dtype=bool)
    elif np.issubdtype(values.dtype, np.floating):
        nulls = np.isnan(values)
    else:
        nulls = np.zeros(values.shape, dtype=bool)
    if not feature.nullable and nulls.any():
        row = int(np.flatnonzero(nulls)[0])
        raise ContractViolation(
            f"{source}: feature {feature.name} is null at row {row}; contract says {feature.describe_rule()}"
        )
    present = values[~nulls]
    if feature.is_numeric and present.size:
        numbers = present.astype(np.float64)
        bad = (numbers < feature.min) | (numbers > feature.max)
        if bad.any():
            row = int(np.flatnonzero(~nulls)[np.flatnonzero(bad)[0]])
            raise ContractViolation(
                f"{source}: feature {feature.name} = {numbers[bad][0]:g} at row {row} is outside the contract "
                f"({feature.describe_rule()})"
            )
    if feature.codes and present.size:
        allowed = set(feature.codes)
        for offset, value in enumerate(present):
            if value not in allowed:
                row = int(np.flatnonzero(~nulls)[offset])
                raise ContractViolation(
                    f"{source}: feature {feature.name} = {value!r} at row {row} is not an allowed code "
                    f"({feature.describe_rule()})"
                )


def _parse(raw: Mapping[str, Any]) -> FeatureContract:
    code_lists = {name: tuple(str(c) for c in codes) for name, codes in (raw.get("codes") or {}).items()}
    entities = {
        name: Entity(name=name, model=e["model"], keys=tuple(e["keys"]), description=e["description"])
        for name, e in raw["entities"].items()
    }
    features: list[Feature] = []
    seen: set[str] = set()
    for item in raw["features"]:
        name = item.get("name", "<unnamed>")
        problems = []
        if name in seen:
            problems.append("is declared twice")
        if item.get("entity") not in entities:
            problems.append(f"has unknown entity {item.get('entity')!r}")
        if item.get("dtype") not in DBT_DATA_TYPES:
            problems.append(f"has unknown dtype {item.get('dtype')!r} (one of {sorted(DBT_DATA_TYPES)})")
        unit = item.get("unit")
        if unit not in UNIT_SUFFIXES:
            problems.append(f"has unknown unit {unit!r} (one of {sorted(UNIT_SUFFIXES)})")
        elif not name.endswith(UNIT_SUFFIXES[unit]):
            problems.append(f"does not end in its unit suffix {UNIT_SUFFIXES[unit]!r}")
        if item.get("dtype") in NUMERIC_DTYPES and (item.get("min") is None or item.get("max") is None):
            problems.append("is numeric but has no min/max")
        if unit == "code" and item.get("codes") not in code_lists:
            problems.append(f"is a code but names no code list in `codes:` ({item.get('codes')!r})")
        if "nullable" not in item or not item.get("description"):
            problems.append("needs `nullable` and a `description`")
        if problems:
            raise ContractViolation(f"{CONTRACT_PATH.name}: feature {name} " + "; ".join(problems))
        seen.add(name)
        features.append(
            Feature(
                name=name,
                entity=item["entity"],
                dtype=item["dtype"],
                unit=unit,
                nullable=bool(item["nullable"]),
                description=item["description"],
                min=None if item.get("min") is None else float(item["min"]),
                max=None if item.get("max") is None else float(item["max"]),
                codes=code_lists.get(item.get("codes"), ()),
            )
        )
    canonical = json.dumps(
        [f.__dict__ for f in features], sort_keys=True, default=list
    ).encode()  # hash what the contract means, not its comments or layout
    return FeatureContract(
        version=int(raw["version"]),
        entities=entities,
        features=tuple(features),
        sha256=hashlib.sha256(canonical).hexdigest(),
        _by_name={f.name: f for f in features},
    )


def load_contract(path: Path | None = None) -> FeatureContract:
    """Parse and check a contract file (default: the project's `contracts/features.yml`)."""
    return _load_cached(str(path or CONTRACT_PATH))


@cache
def _load_cached(path: str) -> FeatureContract:
    text = Path(path).read_bytes()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractViolation(f"{path}: not valid YAML: {exc}") from exc
    return _parse(raw)
