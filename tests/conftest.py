from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wattlens.factors import FactorSet, get_factors

sys.path.insert(0, str(Path(__file__).parent))  # tests/fakes.py


@pytest.fixture(scope="session")
def factors() -> FactorSet:
    return get_factors()
