"""Exceptions that tell the orchestrator a failure is deterministic.

A gate that fails (bad data, a failed canary, a registry race) will fail the same way on every
retry, so the DAG maps these to an immediate task failure instead of waiting out retries.
Anything else (connection errors, timeouts) is treated as transient and retried.
"""

from __future__ import annotations


class PipelineGateError(Exception):
    """A deterministic failure: retrying the same task will not help."""


class DataSourceError(PipelineGateError):
    """The configured data source cannot be read or parsed as the wine CSV."""


class SettingsError(PipelineGateError):
    """An environment setting holds a value the pipeline cannot use."""


class DataValidationError(PipelineGateError):
    """The data did not pass the expectation suite."""


class PromotionConflictError(PipelineGateError):
    """Production changed between the comparison and the promotion (another run won)."""


class CanaryError(PipelineGateError):
    """The deployed endpoint does not serve the promoted model correctly."""


class DeploymentError(PipelineGateError):
    """The model server refused to switch to the promoted version."""


class UnknownParamError(PipelineGateError):
    """The run was triggered with a configuration key that is not one of the DAG's Params."""
