"""Rendering figures in tests, so a label the fonts cannot draw fails the test.

Kept out of ``conftest.py`` so tests can import it by a name no other module has.
"""

from __future__ import annotations

import io
import warnings

from matplotlib.figure import Figure


def render(fig: Figure) -> bytes:
    """Draw ``fig`` to PNG, failing on any glyph the fonts cannot draw (a box in the image)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing from font")
        fig.savefig(buffer, format="png")
    return buffer.getvalue()
