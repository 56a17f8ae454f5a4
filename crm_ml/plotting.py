"""Fonts for figures with Chinese text.

Matplotlib's default font has no Chinese glyphs, so labels such as 金卡 or
流失挽回 would draw as boxes. :func:`cjk_font_families` returns the CJK fonts
that are installed, registering the Noto Sans CJK font that ships with the
``notebook`` extra (package ``cvttf-NotoSansCJK-Regular``, family
``Noto Sans CJK TC``) when no system font is present. Figures with English
labels need them too: campaign, owner and tier names are Chinese data.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text

log = logging.getLogger(__name__)

#: CJK fonts tried in order (Linux, macOS and Windows names, then the bundled one).
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "PingFang SC",
    "Microsoft YaHei",
    "SimHei",
    "Noto Sans CJK TC",
)


def _register_bundled_font() -> None:
    try:
        import cvttf_NotoSansCJK_Regular as bundled
    except ImportError:
        return
    for path in Path(bundled.__file__).parent.glob("*.otf"):
        font_manager.fontManager.addfont(str(path))


@cache
def cjk_font_families() -> tuple[str, ...]:
    """Return the installed CJK font families, best first (logs once if there are none)."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    if not installed.intersection(CJK_FONTS):
        _register_bundled_font()
        installed = {font.name for font in font_manager.fontManager.ttflist}
    found = tuple(name for name in CJK_FONTS if name in installed)
    if not found:
        log.warning(
            "No CJK font found (tried %s); Chinese labels will show as boxes. Install the "
            "notebook extra (pip install 'crm_ml[notebook]') or apt-get install fonts-noto-cjk.",
            ", ".join(CJK_FONTS),
        )
    return found


def font_families(lang: str = "zh") -> list[str]:
    """Return a font list that draws Chinese and Latin text.

    Matplotlib takes each glyph from the first font in the list that has it.
    English figures keep DejaVu Sans for their Latin text and take only the
    Chinese glyphs from a CJK font; Chinese figures take everything from the
    CJK font, so Latin text and digits match the Chinese around them.
    """
    if lang == "zh":
        return [*cjk_font_families(), "DejaVu Sans"]
    return ["DejaVu Sans", *cjk_font_families()]


def apply_fonts(fig: Figure, lang: str) -> Figure:
    """Give every text of ``fig`` the fonts of :func:`font_families`; return ``fig``.

    Call it once the figure's texts (titles, labels, legends) exist. Tick
    labels made later, when the figure is drawn, get the same fonts.
    """
    families = font_families(lang)
    for text in fig.findobj(Text):
        text.set_fontfamily(families)
    for ax in fig.axes:
        ax.tick_params(labelfontfamily=families)
    return fig
