"""The deployed model server: MLflow's scoring app for the production version, hot-swappable.

Run it with ``python -m wine_quality.serving``; build it with
``wine_quality.serving.app.create_app``. One module per job:

- ``settings``: the environment, read once into a frozen ``ServerSettings``.
- ``slot``: which version is served; loading it, the atomic swap, following the alias.
- ``limits``: what ``/invocations`` accepts before MLflow sees it, and the JSON refusals.
- ``app``: MLflow's scoring app behind the routes, headers and control API the server adds.

Importing this package loads nothing and reads nothing.
"""

from __future__ import annotations
