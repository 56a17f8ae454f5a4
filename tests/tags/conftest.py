"""Fixtures for tag tests."""

from __future__ import annotations

import pytest
from customer_helpers import add_customers

from crm_ml.store import Store


@pytest.fixture
def five(store: Store) -> Store:
    """A store holding customers c1..c5."""
    add_customers(store, [f"c{i}" for i in range(1, 6)])
    return store
