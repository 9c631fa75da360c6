"""Render dbt's `_features__models.yml` from the feature contract, and check the file on disk is current.

The contract (`contracts/features.yml`) is the only place a feature is declared; the dbt YAML that
enforces column names and types (`contract: {enforced: true}`) and carries every data test is
generated from it, so the warehouse cannot drift from what training and serving validate against.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from streamrec.contracts.schema import UNIT_SUFFIXES, ContractViolation, Feature, FeatureContract, load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import DBT_PROJECT_DIR

DBT_YAML_PATH = DBT_PROJECT_DIR / "models" / "features" / "_features__models.yml"
# One dbt docs block per feature, named as the feature: `{{ doc("<feature>") }}` in any model's YAML.
DBT_DOCS_PATH = DBT_PROJECT_DIR / "models" / "features" / "_features__docs.md"

# Entity key columns: the contract names them, their types and meaning live here (they are not features).
KEY_COLUMNS: Mapping[str, tuple[str, str]] = {
    "user_id": ("bigint", "The user (raw.users.user_id)."),
    "item_id": ("bigint", "The item (raw.items.item_id)."),
    "creator_id": ("bigint", "The item's creator (raw.creators.creator_id)."),
    "as_of": ("timestamp", "Midnight (UTC) of the snapshot; features use only events strictly before it."),
}

HEADER = (
    "# GENERATED from contracts/features.yml by `streamrec contracts render`: do not edit by hand.\n"
    "# `streamrec contracts check` (and tests/unit/test_contracts.py) fail when this file is stale.\n"
)


class _Dumper(yaml.SafeDumper):
    """Indents block lists under their key, as dbt's own examples do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _number(value: float) -> int | float:
    """Whole numbers as ints so the YAML (and the SQL the tests compile to) reads 7200, not 7200.0."""
    return int(value) if float(value).is_integer() else value


def _check_renderable(contract: FeatureContract) -> None:
    """Refuse contracts that parse but cannot become a sound dbt model (named: file, feature, rule)."""
    models = [entity.model for entity in contract.entities.values()]
    if len(set(models)) != len(models):
        raise ContractViolation(f"features.yml: two entities share a dbt model ({models})")
    for entity in contract.entities.values():
        unknown = [key for key in entity.keys if key not in KEY_COLUMNS]
        if unknown:
            raise ContractViolation(
                f"features.yml: entity {entity.name} has key columns {unknown} that contracts/render.py "
                f"does not know (known: {sorted(KEY_COLUMNS)})"
            )
        if not contract.for_entity(entity.name):
            raise ContractViolation(f"features.yml: entity {entity.name} declares no feature")
    for feature in contract.features:
        if feature.name in KEY_COLUMNS:
            raise ContractViolation(f"features.yml: feature {feature.name} has the name of a key column")
        if feature.min is not None and feature.max is not None and feature.min > feature.max:
            raise ContractViolation(
                f"features.yml: feature {feature.name} has min {feature.min:g} above max {feature.max:g}"
            )
        if feature.unit == "code" and not feature.codes:
            raise ContractViolation(f"features.yml: feature {feature.name} is a code with an empty code list")


def _feature_tests(feature: Feature) -> list[Any]:
    tests: list[Any] = []
    # Explicit test names keep `dbt test --select in_range_<feature>` and the failure tables readable.
    if not feature.nullable:
        tests.append("not_null")
    if feature.min is not None and feature.max is not None:  # numeric features carry both bounds
        bounds = {"min_value": _number(feature.min), "max_value": _number(feature.max)}
        tests.append({"streamrec_in_range": {"name": f"in_range_{feature.name}", "arguments": bounds}})
    if feature.codes:
        tests.append({"accepted_values": {"arguments": {"values": list(feature.codes)}}})
    suffixes = sorted(set(UNIT_SUFFIXES.values()))
    tests.append(
        {"streamrec_unit_suffix": {"name": f"unit_suffix_{feature.name}", "arguments": {"suffixes": suffixes}}}
    )
    if feature.is_numeric:
        tests.append({"streamrec_psi": {"name": f"psi_{feature.name}", "arguments": {"unit": feature.unit}}})
    return tests


def feature_doc(feature: Feature) -> str:
    """The text of a feature's docs block: its contract description and rule (unit, range, nullability)."""
    return f"{feature.description} ({feature.describe_rule()})"


def _feature_column(feature: Feature) -> dict[str, Any]:
    return {
        "name": feature.name,
        "data_type": feature.dbt_data_type,
        "description": f'{{{{ doc("{feature.name}") }}}}',
        "data_tests": _feature_tests(feature),
    }


def _model(contract: FeatureContract, entity_name: str) -> dict[str, Any]:
    entity = contract.entities[entity_name]
    keys = [
        {
            "name": key,
            "data_type": KEY_COLUMNS[key][0],
            "description": KEY_COLUMNS[key][1],
            "data_tests": ["not_null"],
        }
        for key in entity.keys
    ]
    grain = [key for key in entity.keys if key != "creator_id"] if "item_id" in entity.keys else list(entity.keys)
    return {
        "name": entity.model,
        "description": entity.description,
        "config": {"contract": {"enforced": True}},
        "data_tests": [{"streamrec_unique_combination": {"arguments": {"combination_of_columns": grain}}}],
        "columns": keys + [_feature_column(f) for f in contract.for_entity(entity_name)],
    }


def render_dbt_yaml(contract_path: Path | None = None) -> str:
    """The `_features__models.yml` text the contract renders to (ContractViolation if the contract is unsound)."""
    contract = load_contract(contract_path)
    _check_renderable(contract)
    document = {
        "version": 2,
        "models": [_model(contract, name) for name in contract.entities],
    }
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000)
    return HEADER + body


def render_dbt_docs(contract_path: Path | None = None) -> str:
    """The `_features__docs.md` text: one `{% docs <feature> %}` block per contract feature."""
    contract = load_contract(contract_path)
    _check_renderable(contract)
    header = (
        "{# GENERATED from contracts/features.yml by `streamrec contracts render`: do not edit by hand.\n"
        "   `streamrec contracts check` (and tests/unit/test_contracts.py) fail when this file is stale. #}\n"
    )
    blocks = [f"{{% docs {f.name} %}}\n{feature_doc(f)}\n{{% enddocs %}}\n" for f in contract.features]
    return header + "\n" + "\n".join(blocks)


def write_dbt_yaml(contract_path: Path | None = None, target: Path | None = None) -> Path:
    """Render the contract and write the dbt YAML (default: dbt_project/models/features/_features__models.yml)."""
    target = target or DBT_YAML_PATH
    text = render_dbt_yaml(contract_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".yml.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    docs = target.with_name(DBT_DOCS_PATH.name)
    docs_tmp = docs.with_suffix(".md.tmp")
    docs_tmp.write_text(render_dbt_docs(contract_path))
    docs_tmp.replace(docs)
    return target


def check_dbt_yaml(contract_path: Path | None = None, target: Path | None = None) -> None:
    """Raise StreamRecError naming the first differing line if the dbt YAML on disk is not what the contract renders."""
    target = target or DBT_YAML_PATH
    _check_file(target, render_dbt_yaml(contract_path))
    _check_file(target.with_name(DBT_DOCS_PATH.name), render_dbt_docs(contract_path))


def _check_file(target: Path, expected: str) -> None:
    if not target.exists():
        raise StreamRecError(f"{target} is missing: run `streamrec contracts render`")
    actual = target.read_text()
    if actual == expected:
        return
    diff = [
        line
        for line in difflib.unified_diff(actual.splitlines(), expected.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    first = diff[0] if diff else "(whitespace only)"
    raise StreamRecError(
        f"{target} does not match contracts/features.yml ({len(diff)} differing lines, first: {first.strip()!r}): "
        "run `streamrec contracts render`"
    )
