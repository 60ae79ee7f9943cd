"""The holdout: which rows are kept apart from training, and how they travel.

A row's side is decided by its content alone, so it never changes as the data grows or is
reordered; the rule's name (``split_rule``) is recorded with every version so that the rows a
version trained on can be rebuilt (:mod:`wine_quality.model.lineage`). The rows themselves
are logged
with the candidate as CSV and proved the same by their digest.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from wine_quality.core.config import COLUMNS, FEATURES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

HOLDOUT_ARTIFACT = "holdout/holdout.csv"
# The holdout rule's name, recorded with every version (tag ``split_rule``): a row is in the
# holdout when its content hash falls in the first ``fraction`` of HASH_BUCKETS buckets.
SPLIT_RULE = "content-hash-v1"
HASH_BUCKETS = 1_000_000


def row_groups(frame: pd.DataFrame) -> np.ndarray:
    """A stable 64-bit hash of each row's content: equal rows (exact duplicates) hash equal.

    The columns are taken in the config's order as float64, so a file that writes ``29`` where
    another writes ``29.0``, or orders its columns differently, gives the same hashes. pandas'
    row hash uses a fixed key: the value of a row never depends on the run or the file.
    """
    import pandas as pd

    columns = [c for c in COLUMNS if c in frame.columns]
    return pd.util.hash_pandas_object(
        frame.loc[:, columns].astype("float64"), index=False
    ).to_numpy()


def split_rule(fraction: float) -> str:
    """The split rule as recorded with the holdout digest (tag ``split_rule``)."""
    return f"{SPLIT_RULE}:{fraction:g}"


def in_holdout(frame: pd.DataFrame, fraction: float) -> np.ndarray:
    """Which rows are on the holdout side: decided by each row's content alone.

    A row's side depends on nothing but its values, so it never changes when rows are added,
    removed or reordered: a row that trained one version is never in a later version's holdout
    (with the same fraction), and exact duplicates fall on the same side.
    """
    return (row_groups(frame) % HASH_BUCKETS) < round(fraction * HASH_BUCKETS)


def split_holdout(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into train and holdout by content hash (:func:`in_holdout`).

    Returns:
        ``(train, holdout)``, each with a fresh index.

    Raises:
        ValueError: One side is empty (too few distinct rows for this fraction).
    """
    holdout_mask = in_holdout(frame, fraction)
    train, holdout = frame[~holdout_mask], frame[holdout_mask]
    if train.empty or holdout.empty:
        raise ValueError(
            f"the content-hash split of {len(frame)} rows at fraction {fraction:g} left"
            f" {len(train)} training and {len(holdout)} holdout rows"
        )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def holdout_digest(holdout: pd.DataFrame) -> str:
    """Content digest of the holdout rows: equal digests mean the very same evaluation data."""
    digest = hashlib.sha256()
    digest.update(",".join(holdout.columns).encode())
    digest.update(row_groups(holdout).tobytes())
    return digest.hexdigest()[:16]


def write_holdout(holdout: pd.DataFrame, path: Path) -> None:
    """Write the holdout rows as CSV, every float in its shortest exact form.

    pyarrow's writer is columnar (pandas' formats cell by cell, ten times slower), and the
    digest recomputed by :func:`load_holdout`'s reader matches: values come back bit for bit.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.Table.from_pandas(holdout, preserve_index=False), str(path))


def read_holdout(path: Path) -> pd.DataFrame:
    """Read a holdout CSV (also one an older version wrote with pandas) into typed columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Comma-separated, unlike the raw data; pyarrow parses every float exactly.
    types = {name: pa.float64() for name in FEATURES}
    table = pacsv.read_csv(str(path), convert_options=pacsv.ConvertOptions(column_types=types))
    return table.to_pandas()


def load_holdout(holdout_uri: str, tracking_uri: str) -> pd.DataFrame:
    """Download a candidate's holdout rows (logged by :func:`train_and_register`) as a frame."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=holdout_uri, dst_path=tmp, tracking_uri=tracking_uri
        )
        return read_holdout(Path(local))
