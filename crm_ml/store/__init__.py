"""The relational customer/loyalty store: schema, connections, loading, identity, loyalty."""

from crm_ml.store.admin import check_store, init_store, table_counts
from crm_ml.store.connection import Store

__all__ = ["Store", "check_store", "init_store", "table_counts"]
