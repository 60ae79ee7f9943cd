"""A run configuration may only name the DAG's Params: a misspelt key fails, naming itself."""

from __future__ import annotations

import pytest

from wine_quality.core.config import check_conf_keys
from wine_quality.core.errors import PipelineGateError, UnknownParamError

VALID = ("max_rmse", "min_r2", "data_uri")


@pytest.mark.parametrize("conf", [None, {}, {"max_rmse": 0.7}, dict.fromkeys(VALID)])
def test_known_keys_pass(conf):
    check_conf_keys(conf, VALID)


def test_an_unknown_key_is_named_with_the_valid_keys():
    with pytest.raises(UnknownParamError) as caught:
        check_conf_keys({"max_rsme": 0.7, "min_r2": 0.3}, VALID)
    assert str(caught.value) == (
        "unknown run configuration key 'max_rsme'; valid keys are: data_uri, max_rmse, min_r2"
    )


def test_every_unknown_key_is_named_and_the_failure_is_final():
    with pytest.raises(UnknownParamError, match="keys 'a', 'b';") as caught:
        check_conf_keys({"b": 1, "a": 2}, VALID)
    # A gate error: the DAG fails the task at once instead of retrying it.
    assert isinstance(caught.value, PipelineGateError)
