"""Queries by tag name refuse an unknown name instead of answering "nobody"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from customer_helpers import D1, D2

from crm_ml.errors import NotFoundError
from crm_ml.store import Store
from crm_ml.tags import (
    TagDefinition,
    customers_with_tag,
    get_tag_definition,
    save_tag_definition,
    tag_changes,
    tag_history,
    tag_sizes,
)

QUERIES: dict[str, Callable[[Store, str], Any]] = {
    "customers_with_tag": lambda store, name: customers_with_tag(store, name, D1),
    "tag_sizes": lambda store, name: tag_sizes(store, ["dormant", name], [D1, D2]),
    "tag_history": lambda store, name: tag_history(store, tag=name),
    "tag_changes": lambda store, name: tag_changes(store, name, D1, D2),
}


@pytest.fixture
def defined(five: Store) -> Store:
    """A store where ``dormant`` is defined but nobody holds it yet."""
    save_tag_definition(five, TagDefinition("dormant", "沉睡客户", rule="recency_days > 60"))
    return five


@pytest.mark.parametrize("query", QUERIES)
def test_an_unknown_tag_raises_like_get_tag_definition(defined: Store, query: str) -> None:
    with pytest.raises(NotFoundError) as expected:
        get_tag_definition(defined, "dormnat")
    with pytest.raises(NotFoundError, match="Did you mean 'dormant'") as raised:
        QUERIES[query](defined, "dormnat")
    assert str(raised.value) == str(expected.value)
    QUERIES[query](defined, "dormant")  # a defined tag nobody holds is an empty answer
