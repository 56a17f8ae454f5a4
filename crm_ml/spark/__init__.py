"""Scale-out on Apache Spark (placeholder)."""
