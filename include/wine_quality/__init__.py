"""Retraining pipeline for the UCI red wine quality regressor.

Everything the Airflow DAG does lives here as plain, typed functions; the DAG only wires them.
Importing this package is cheap: heavy libraries (pandas, sklearn, mlflow, GX) are imported by
the modules that need them, and no module touches the network or disk on import.
"""

from __future__ import annotations

__version__ = "0.1.0"
