"""An ipywidgets segment explorer: build an audience from controls, see it, save it, export it.

>>> explorer = SegmentExplorer(store, features, "2025-06-30", secret=secret)  # doctest: +SKIP
>>> explorer.widget                                 # in JupyterLab  # doctest: +SKIP
>>> explorer.apply(tags=["vip"], thresholds=[("recency_days", ">", 90)])  # doctest: +SKIP
>>> explorer.rule, explorer.size                    # doctest: +SKIP
('tag("vip") and recency_days > 90', 412)
>>> explorer.save("vip_lapsing", label="贵宾流失预警")  # the batch job uses it  # doctest: +SKIP

The controls write **rule text** in the rule language of :mod:`crm_ml.rules`
(never SQL); every change is compiled against the segment vocabulary and
evaluated in pandas over the features frame, exactly as the batch job will
evaluate the saved segment. Sample rows are masked like exported lists.

Every control is an attribute, so a test or a notebook cell can set values
from Python and read :attr:`SegmentExplorer.rule` and :attr:`SegmentExplorer.size`.
Widgets do not render in offline HTML reports: :meth:`SegmentExplorer.summary`,
:meth:`~SegmentExplorer.figure` and :meth:`~SegmentExplorer.sample` give the
same results as a static table and figure.

The package holds the explorer class (:mod:`~crm_ml.widgets.explorer`), its
controls (:mod:`~crm_ml.widgets.controls`) and its static results
(:mod:`~crm_ml.widgets.preview`).
"""

from crm_ml.widgets.controls import OPERATORS, SCORE_SLIDERS, ThresholdRow
from crm_ml.widgets.explorer import SegmentExplorer
from crm_ml.widgets.preview import SAMPLE_FEATURES

__all__ = ["OPERATORS", "SAMPLE_FEATURES", "SCORE_SLIDERS", "SegmentExplorer", "ThresholdRow"]
