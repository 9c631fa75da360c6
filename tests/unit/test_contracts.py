"""The dbt feature YAML is generated from contracts/features.yml and must stay in step with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamrec.contracts import ContractViolation, load_contract
from streamrec.contracts.render import DBT_YAML_PATH, KEY_COLUMNS, check_dbt_yaml, render_dbt_yaml, write_dbt_yaml
from streamrec.contracts.schema import CONTRACT_PATH, UNIT_SUFFIXES
from streamrec.core.errors import StreamRecError


@pytest.fixture(scope="module")
def dbt_models() -> dict[str, dict]:
    """The feature models of the dbt YAML on disk, by model name."""
    document = yaml.safe_load(DBT_YAML_PATH.read_text())
    return {model["name"]: model for model in document["models"]}


def _tests_of(column: dict) -> dict[str, dict]:
    """A column's data tests by test name, with their arguments ({} for bare tests like not_null)."""
    tests: dict[str, dict] = {}
    for test in column.get("data_tests", []):
        if isinstance(test, str):
            tests[test] = {}
        else:
            ((name, config),) = test.items()
            tests[name] = config.get("arguments", {})
    return tests


def _broken_contract(tmp_path: Path, edit) -> Path:
    """A copy of the real contract with one feature changed by `edit(feature_dict)`."""
    raw = yaml.safe_load(CONTRACT_PATH.read_text())
    edit(raw)
    path = tmp_path / "features.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_rendered_yaml_on_disk_is_current() -> None:
    assert DBT_YAML_PATH.read_text() == render_dbt_yaml()
    check_dbt_yaml()


def test_every_contract_feature_is_a_column_of_its_model_with_its_data_type(dbt_models: dict[str, dict]) -> None:
    contract = load_contract()
    for feature in contract.features:
        model = dbt_models[contract.entities[feature.entity].model]
        columns = {c["name"]: c for c in model["columns"]}
        assert feature.name in columns, f"{feature.name} missing from {model['name']}"
        assert columns[feature.name]["data_type"] == feature.dbt_data_type


def test_every_non_key_model_column_is_a_contract_feature(dbt_models: dict[str, dict]) -> None:
    contract = load_contract()
    for entity in contract.entities.values():
        model = dbt_models[entity.model]
        names = [c["name"] for c in model["columns"]]
        assert names[: len(entity.keys)] == list(entity.keys), "keys come first, in contract order"
        for name in names[len(entity.keys) :]:
            assert name in contract, f"{entity.model}.{name} is not in contracts/features.yml"
            assert contract[name].entity == entity.name


def test_models_enforce_the_contract_and_their_grain(dbt_models: dict[str, dict]) -> None:
    contract = load_contract()
    for entity in contract.entities.values():
        model = dbt_models[entity.model]
        assert model["config"]["contract"]["enforced"] is True
        (grain_test,) = model["data_tests"]
        grain = grain_test["streamrec_unique_combination"]["arguments"]["combination_of_columns"]
        assert grain[-1] == "as_of" and set(grain) <= set(entity.keys)
        for column in model["columns"][: len(entity.keys)]:
            assert column["data_type"] == KEY_COLUMNS[column["name"]][0]
            assert "not_null" in _tests_of(column)


def test_each_feature_carries_the_tests_its_contract_implies(dbt_models: dict[str, dict]) -> None:
    contract = load_contract()
    for feature in contract.features:
        model = dbt_models[contract.entities[feature.entity].model]
        column = next(c for c in model["columns"] if c["name"] == feature.name)
        tests = _tests_of(column)
        assert ("not_null" in tests) == (not feature.nullable), feature.name
        assert set(tests["streamrec_unit_suffix"]["suffixes"]) == set(UNIT_SUFFIXES.values())
        if feature.is_numeric:
            assert tests["streamrec_in_range"] == {"min_value": feature.min, "max_value": feature.max}
            assert tests["streamrec_psi"] == {"unit": feature.unit}
        else:
            assert "streamrec_in_range" not in tests and "streamrec_psi" not in tests
        if feature.codes:
            assert tests["accepted_values"]["values"] == list(feature.codes)


def test_check_refuses_a_stale_yaml_and_write_repairs_it(tmp_path: Path) -> None:
    target = tmp_path / "_features__models.yml"
    target.write_text(render_dbt_yaml().replace("data_type: double", "data_type: float", 1))
    with pytest.raises(StreamRecError, match=r"does not match contracts/features.yml.*streamrec contracts render"):
        check_dbt_yaml(target=target)
    write_dbt_yaml(target=target)
    check_dbt_yaml(target=target)


def test_check_refuses_a_missing_yaml(tmp_path: Path) -> None:
    with pytest.raises(StreamRecError, match="missing"):
        check_dbt_yaml(target=tmp_path / "nope.yml")


def test_contract_feature_without_its_unit_suffix_is_refused(tmp_path: Path) -> None:
    def rename(raw: dict) -> None:
        raw["features"][0]["name"] = "user_avg_session_length_7d"

    with pytest.raises(
        ContractViolation, match=r"user_avg_session_length_7d does not end in its unit suffix '_seconds'"
    ):
        render_dbt_yaml(_broken_contract(tmp_path, rename))


def test_contract_with_min_above_max_is_refused(tmp_path: Path) -> None:
    def invert(raw: dict) -> None:
        raw["features"][1]["min"], raw["features"][1]["max"] = 10, 0

    with pytest.raises(ContractViolation, match=r"user_interaction_count_30d_count has min 10 above max 0"):
        render_dbt_yaml(_broken_contract(tmp_path, invert))


def test_contract_with_unknown_dtype_is_refused(tmp_path: Path) -> None:
    def retype(raw: dict) -> None:
        raw["features"][2]["dtype"] = "decimal"

    with pytest.raises(ContractViolation, match=r"user_interaction_count_7d_count has unknown dtype 'decimal'"):
        render_dbt_yaml(_broken_contract(tmp_path, retype))


def test_contract_entity_with_an_unknown_key_column_is_refused(tmp_path: Path) -> None:
    def clash(raw: dict) -> None:
        raw["entities"]["user"]["keys"] = ["user_id", "as_of", "signup_day"]

    with pytest.raises(ContractViolation, match=r"entity user has key columns \['signup_day'\]"):
        render_dbt_yaml(_broken_contract(tmp_path, clash))


def test_contract_declaring_a_feature_twice_is_refused(tmp_path: Path) -> None:
    def duplicate(raw: dict) -> None:
        raw["features"].append(dict(raw["features"][0]))

    with pytest.raises(ContractViolation, match=r"user_avg_session_length_7d_seconds is declared twice"):
        render_dbt_yaml(_broken_contract(tmp_path, duplicate))
