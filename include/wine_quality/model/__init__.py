"""Train: the pyfunc wrapper MLflow serves (``wrapper``), the hyper-parameter grid
(``search``), fitting and registering a candidate (``train``) and the lineage tags that tie a
version to its data and holdout (``lineage``)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Versions logged before the package was grouped by stage pickled their wrapper as
    # ``wine_quality.model.WineQualityRegressor``; this keeps them loadable.
    if name == "WineQualityRegressor":
        from wine_quality.model.wrapper import WineQualityRegressor

        return WineQualityRegressor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
