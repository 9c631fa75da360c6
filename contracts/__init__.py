"""Feature contracts: the single source of truth for every feature's name, dtype, unit and range."""

from streamrec.contracts.schema import (
    ContractViolation,
    Feature,
    FeatureContract,
    load_contract,
)

__all__ = ["ContractViolation", "Feature", "FeatureContract", "load_contract"]
