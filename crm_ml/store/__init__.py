"""The relational customer/loyalty store: schema, connections, loading, identity, loyalty."""

from crm_ml.store.admin import check_store, init_store, table_counts
from crm_ml.store.connection import Store
from crm_ml.store.loading import LoadResult, import_file, import_frame
from crm_ml.store.migrations import upgrade_store

__all__ = [
    "LoadResult",
    "Store",
    "check_store",
    "import_file",
    "import_frame",
    "init_store",
    "table_counts",
    "upgrade_store",
]
