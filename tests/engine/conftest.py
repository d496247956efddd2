"""Engine tests: the pure plan function, and the engine itself on the in-memory store
with the fake connectors of ``engine_fakes.py``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))   # --import-mode=importlib: make `engine_fakes` importable
