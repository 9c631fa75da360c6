"""Atomic file writes: a reader sees the old file or the new one, never half of either, even after a crash."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np


def _json_default(value: Any) -> Any:
    # Metrics often arrive as numpy scalars/arrays or datetimes; store them as plain JSON values.
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, datetime | Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to a temp file in the same directory, fsync, then rename over `path` (never half-written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=_json_default)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory entry is on disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
