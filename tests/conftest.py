"""Shared by every test package: makes ParallelCluster's config schema importable.

`make setup-dev` installs aws-parallelcluster (requirements/pcluster.in) with --no-deps
into `<venv>/pcluster-schema`, not into site-packages: its own pins (CDK v1) cannot
share the venv with aws-cdk-lib v2, and its console script would put a broken
`pcluster` in front of a user's real one. Tests that load the schema
(`from pcluster.schemas.cluster_schema import ClusterSchema`) find it through this path.
"""

from __future__ import annotations

import sys
from pathlib import Path

PCLUSTER_SCHEMA_DIR = Path(sys.prefix) / "pcluster-schema"

# Appended, not prepended: nothing there may shadow what the venv itself installed.
if PCLUSTER_SCHEMA_DIR.is_dir() and str(PCLUSTER_SCHEMA_DIR) not in sys.path:
    sys.path.append(str(PCLUSTER_SCHEMA_DIR))
