"""What the import tests share: a source file written to a folder, and rows read back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text


def write(folder: Path, name: str, body: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``body`` (text in ``encoding``, or raw bytes) to ``folder / name``."""
    path = folder / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode(encoding))
    return path


def rows(store, sql: str, **params) -> list[tuple]:
    """The rows of ``sql`` (with bound ``params``) as plain tuples."""
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]
