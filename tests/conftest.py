from __future__ import annotations

import pytest

from wattlens.factors import FactorSet, get_factors


@pytest.fixture(scope="session")
def factors() -> FactorSet:
    return get_factors()
