"""The feature snapshot file (write, verify, refuse) and the workers' shared-state file, on real files."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from streamrec.api.services.shared_state import SharedState
from streamrec.contracts.schema import load_contract
from streamrec.models_ml.feature_snapshot import (
    MANIFEST_FILE,
    USER_FILE,
    SnapshotRefused,
    load_snapshot,
    snapshot_id_for,
    write_snapshot,
)

AS_OF = datetime(2026, 12, 1)


def _columns(n: int = 50) -> dict[str, torch.Tensor]:
    contract = load_contract()
    columns = {"user_id": torch.arange(1, n + 1, dtype=torch.int64) * 3}
    for feature in contract.for_entity("user"):
        if feature.codes:
            columns[feature.name] = torch.zeros(n, dtype=torch.int64)
        else:
            columns[feature.name] = torch.full((n,), float(feature.min or 0.0), dtype=torch.float32)
    return columns


def _write(root: Path, columns: dict[str, torch.Tensor] | None = None) -> Path:
    contract = load_contract()
    directory = root / snapshot_id_for(AS_OF, contract.sha256)
    write_snapshot(directory, columns or _columns(), snapshot_id=directory.name, as_of=AS_OF, contract=contract)
    return directory


def test_a_written_snapshot_maps_back_without_a_copy(tmp_path: Path) -> None:
    snapshot = load_snapshot(_write(tmp_path))
    assert snapshot.n_users == 50 and snapshot.as_of == AS_OF
    assert snapshot.user_ids[:3].tolist() == [3, 6, 9]
    # views of the mapped file (read-only, not owning their memory), not private copies
    assert not snapshot.user_ids.flags.writeable and not snapshot.user_ids.flags.owndata


def test_a_damaged_file_or_foreign_contract_is_refused(tmp_path: Path) -> None:
    directory = _write(tmp_path)
    with pytest.raises(SnapshotRefused, match="not the serving bundle"):
        load_snapshot(directory, expected_contract_sha256="f" * 64)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, "contract_sha256": "0" * 64}))
    with pytest.raises(SnapshotRefused, match="written for contract"):
        load_snapshot(directory)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    data = bytearray((directory / USER_FILE).read_bytes())
    data[-64] ^= 0xFF
    (directory / USER_FILE).write_bytes(bytes(data))
    with pytest.raises(SnapshotRefused, match="does not match its manifest"):
        load_snapshot(directory)


def test_values_outside_the_contract_are_refused(tmp_path: Path) -> None:
    contract = load_contract()
    numeric = next(f for f in contract.for_entity("user") if not f.codes and f.max is not None)
    columns = _columns()
    columns[numeric.name] = torch.full((50,), float(numeric.max) * 2 + 1, dtype=torch.float32)
    with pytest.raises(SnapshotRefused, match=numeric.name):
        load_snapshot(_write(tmp_path, columns))
    coded = next(f for f in contract.for_entity("user") if f.codes)
    columns = _columns()
    columns[coded.name] = torch.full((50,), len(coded.codes), dtype=torch.int64)
    with pytest.raises(SnapshotRefused, match=coded.name):
        load_snapshot(_write(tmp_path / "b", columns))


def _add_from_another_process(path: str) -> None:
    state = SharedState(Path(path))
    state.add("v1", np.arange(18, dtype=np.float64))
    state.bump()
    state.close()


def test_two_processes_share_exposure_and_one_claims_the_restore(tmp_path: Path) -> None:
    path = tmp_path / "shared.state"
    mine = SharedState(path)
    mine.add("v1", np.ones(18))
    process = multiprocessing.get_context("spawn").Process(target=_add_from_another_process, args=(str(path),))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert mine.exposure("v1").tolist() == (np.ones(18) + np.arange(18)).tolist()
    assert mine.exposure("v2").tolist() == [0.0] * 18
    assert mine.generation == 1
    other = SharedState(path)
    assert [mine.claim_restore(), other.claim_restore(), mine.claim_restore()] == [True, False, False]
