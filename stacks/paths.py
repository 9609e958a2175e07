"""Where the stack finds the repository files it deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
# Lambda dependency cache and assembled asset (git-ignored); see petal/lambda_bundle.py.
BUILD_DIR: Final = REPO_ROOT / "build"
ASSETS_DIR: Final = Path(__file__).resolve().parent / "assets"
