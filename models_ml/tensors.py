"""Named columns to model inputs: contract validation and tensors, with no warehouse access.

Serving (`streamrec.api`) and training share these functions; they live apart from `models_ml.data`,
which reads the warehouse, so that the API imports no DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from streamrec.contracts.schema import ContractViolation, Feature, validate_values

Columns = dict[str, np.ndarray]


def take_rows(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> Columns:
    """The same columns restricted to `rows` (a boolean mask or integer positions)."""
    return {name: values[rows] for name, values in columns.items()}


def validate_features(columns: Mapping[str, np.ndarray], features: Sequence[Feature], source: str) -> None:
    """Check every feature is present (by name) and every value keeps the contract; raise ContractViolation."""
    for feature in features:
        if feature.name not in columns:
            raise ContractViolation(
                f"{source}: contract feature {feature.name} is missing (columns: {sorted(columns)})"
            )
        validate_values(feature, np.asarray(columns[feature.name]), source)


def to_tensors(
    columns: Mapping[str, np.ndarray], features: Sequence[Feature], keys: Sequence[str] = ("user_id", "item_id")
) -> dict[str, Tensor]:
    """Named model inputs: numbers float32 with NaN for null, flags 0/1, codes as their index in the contract list.

    Run `validate_features` first: an unknown code here is a bug, not bad data, and raises.
    """
    out: dict[str, Tensor] = {}
    for key in keys:
        if key in columns:
            out[key] = torch.from_numpy(np.asarray(columns[key]).astype(np.int64))
    for feature in features:
        values = np.asarray(columns[feature.name])
        if feature.codes:
            uniques, inverse = np.unique(values.astype(str), return_inverse=True)
            lookup = {code: i for i, code in enumerate(feature.codes)}
            index = np.array([lookup[u] for u in uniques], dtype=np.int64)
            out[feature.name] = torch.from_numpy(index[inverse.reshape(-1)])
        else:
            if values.dtype == object:
                values = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            out[feature.name] = torch.from_numpy(values.astype(np.float32))
    return out
