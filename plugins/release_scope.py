"""Skip the rest of the release in one step, and nothing outside it.

``wine_retraining`` stops its release (approve, promote, deploy, canary, rollback) at two
points: the ``should_promote`` gate when the candidate is not better, and ``approve`` on a
rejection. Skipping only the direct downstream task and letting the skip travel down the chain
costs one scheduling pass per task; ``airflow dags test`` sleeps a second on every pass that
finds nothing to run, which was 3 s of every nightly run that kept production. Skipping every
downstream task (Airflow's ``ignore_downstream_trigger_rules=True``) would also skip the
summary and the watcher, which must run whatever happened.

So these operators skip every downstream task that sits in their own task group (the release)
at once, and leave the tasks outside it to their trigger rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.python import ShortCircuitOperator

if TYPE_CHECKING:
    from airflow.sdk.definitions._internal.node import DAGNode


def same_group(owner: Any, tasks: Iterable[DAGNode]) -> list[DAGNode]:
    """The ``tasks`` that are in ``owner``'s task group (none when ``owner`` has no group)."""
    group = getattr(owner, "task_group", None)
    if group is None or group.group_id is None:  # the root group: no scope to keep to
        return []
    return [t for t in tasks if getattr(t.task_group, "group_id", None) == group.group_id]


class ReleaseScopedSkip:
    """A SkipMixin's ``skip`` kept to the operator's own task group.

    Put it before the operator class in the bases, and set ``ignore_downstream_trigger_rules``:
    the operator then asks to skip everything downstream, and this keeps the release's part.
    """

    def skip(self, ti: Any, tasks: Iterable[DAGNode]) -> None:
        super().skip(ti=ti, tasks=same_group(self, tasks))  # type: ignore[misc]


class ReleaseGate(ReleaseScopedSkip, ShortCircuitOperator):
    """A short-circuit whose False skips the rest of its task group at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ignore_downstream_trigger_rules=True, **kwargs)
