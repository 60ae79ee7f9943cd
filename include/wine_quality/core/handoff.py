"""The XCom boundary: the package's result dataclasses to small JSON-able dicts and back.

Inside the package steps hand each other dataclasses (``IngestResult``, ``Candidate``,
``Decision``, ...). Only between Airflow tasks, where XCom stores JSON, do they become dicts,
and this module is the one place that converts. The dicts keep the dataclasses' field names:
the run summary, the MLflow links (``run_id``, ``version``, ...) and people read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def to_xcom(result: Any) -> dict[str, Any]:
    """``result`` (a dataclass instance) as a plain dict for XCom.

    An optional field (one whose default is None) is left out while it is None, so an extra
    such as a rollback's ``redeploy_error`` appears only when there is one.
    """
    value = dataclasses.asdict(result)
    for spec in dataclasses.fields(result):
        if spec.default is None and value[spec.name] is None:
            del value[spec.name]
    return value


def from_xcom(cls: type[T], value: Mapping[str, Any]) -> T:
    """Rebuild a ``cls`` from what :func:`to_xcom` (or a service's JSON) gave; extra keys are
    ignored, missing optional ones take their defaults."""
    names = {spec.name for spec in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{key: item for key, item in value.items() if key in names})
