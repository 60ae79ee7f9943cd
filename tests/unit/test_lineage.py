"""Rebuilding a version's training rows from its recorded split rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wine_quality.data.holdout import row_groups, split_holdout, split_rule
from wine_quality.model.lineage import LEGACY_SPLIT_RULE, LineageError, training_rows


def test_content_hash_rule_gives_back_exactly_the_training_side(wine_frame):
    train, holdout = split_holdout(wine_frame, 0.2)
    rebuilt = training_rows(wine_frame, split_rule(0.2), seed=42)
    assert sorted(row_groups(rebuilt)) == sorted(row_groups(train))
    assert not set(row_groups(rebuilt)) & set(row_groups(holdout))


def test_a_grown_file_never_puts_a_training_row_of_the_old_version_in_the_new_holdout(wine_frame):
    old_training = training_rows(wine_frame, split_rule(0.2), seed=42)
    extra = wine_frame.sample(n=2000, replace=True, random_state=5).reset_index(drop=True)
    extra["alcohol"] = extra["alcohol"] + np.random.default_rng(5).normal(0, 0.05, len(extra))
    _, new_holdout = split_holdout(pd.concat([wine_frame, extra], ignore_index=True), 0.2)
    assert len(new_holdout) > 300
    assert not np.isin(row_groups(new_holdout), row_groups(old_training)).any()


def test_the_legacy_rule_is_rebuilt_and_does_overlap_a_content_hash_holdout(wine_frame):
    # Versions registered before the content-hash rule: their training rows are rebuilt with
    # the old seeded split, and some of them sit in today's holdout (which evaluation removes).
    legacy = training_rows(wine_frame, f"{LEGACY_SPLIT_RULE}:0.2", seed=42)
    again = training_rows(wine_frame, f"{LEGACY_SPLIT_RULE}:0.2", seed=42)
    assert legacy.equals(again)
    assert 0.75 < len(legacy) / len(wine_frame) < 0.85
    _, holdout = split_holdout(wine_frame, 0.2)
    assert np.isin(row_groups(holdout), row_groups(legacy)).sum() > 100


def test_an_unknown_rule_is_refused(wine_frame):
    with pytest.raises(LineageError, match="unknown split rule"):
        training_rows(wine_frame, "random-v9:0.2", seed=42)
