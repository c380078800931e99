"""Where every bench script finds this repository and the shared data (not a benchmark).

``import shared`` (a script's own folder, bench/, is first on ``sys.path``) puts the
repository root first on ``sys.path`` too, so ``import pipeline`` finds this checkout's
package whichever folder the script is run from.

The shared data lives beside the repository, at ``../shared/data``, or wherever
``$MUSICRNN_SHARED`` says; ``$MUSICRNN_CHOPIN``, which tests/conftest.py also reads,
still points at the nocturnes alone.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(os.environ.get("MUSICRNN_SHARED") or ROOT.parent / "shared" / "data")
NOCTURNES = Path(os.environ.get("MUSICRNN_CHOPIN") or SHARED_DATA / "chopin-nocturnes")
POLYPHONIC = SHARED_DATA / "polyphonic"


def require(path: Path) -> Path:
    """``path`` when it exists; otherwise exit with one line saying where the data goes."""
    path = Path(path)
    if not path.exists():
        sys.exit(f"{path} not found: put the shared data at ../shared/data or set MUSICRNN_SHARED")
    return path
