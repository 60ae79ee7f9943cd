"""The deployed model server: MLflow's scoring app for the production version, hot-swappable.

Run it with ``python -m wine_quality.serving``; build it with
``wine_quality.serving.app.create_app``. Importing this package loads nothing and reads nothing.
"""

from __future__ import annotations
