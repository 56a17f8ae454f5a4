"""Report tables in the reader's language: headers, group names, percentages and money.

The analyses return frames with the code's column names (``revenue_at_risk``,
``churn_rate`` …) and rates as fractions, so Python code reads them the same in
either language. A report shows them through :func:`report_table`: headers and
the markers of groups without a segment, tier or owner in ``lang`` (the
report's ``settings.language``: Chinese by default, English with
``CRM_ML_LANGUAGE=en``), rates as percentages, uplifts in percentage points and
money as whole amounts with the currency in the header. The contact lists do
the same for their files (:mod:`crm_ml.segments.headers`); the two share their
Chinese words for a customer's 12-month spend and value at risk, which are the
same numbers in a report and a list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

import pandas as pd

from crm_ml.analysis._common import NO_OWNER, NO_SEGMENT
from crm_ml.analysis.tiers import NO_TIER
from crm_ml.config import CURRENCY_SYMBOLS
from crm_ml.errors import ConfigError

#: How each column is shown; a column not named here is shown as it is.
COLUMN_KINDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "customers",
            "active_start",
            "new",
            "reactivated",
            "churned",
            "active_end",
            "purchasers",
            "upgraded",
            "unchanged",
            "downgraded",
            "orders",
            "treatment_contacts",
            "treatment_responders",
            "control_contacts",
            "control_responders",
            "points",
            "points_balance",
            "points_expired_unposted",
            "points_outstanding",
        ),
        "count",
    ),
    **dict.fromkeys(
        (
            "churn_rate",
            "upgrade_rate",
            "downgrade_rate",
            "customer_share",
            "revenue_share",
            "top_customer_share",
            "treatment_rate",
            "control_rate",
            "p_churn_mean",
            "revenue_at_risk_rate",
            "share_of_total_at_risk",
        ),
        "rate",
    ),
    # Differences of two rates: percentage points, not percent.
    **dict.fromkeys(("uplift", "uplift_ci_low", "uplift_ci_high"), "points_diff"),
    **dict.fromkeys(
        ("revenue", "revenue_12m", "revenue_at_risk", "aov", "liability", "value"), "money"
    ),
    **dict.fromkeys(("expected_churners", "incremental_responders"), "estimate"),
    "orders_per_customer": "ratio",
    "p_value": "p_value",
    **dict.fromkeys(("complete", "significant"), "flag"),
}

#: The header of each analysis column, per language. ``{currency}`` is the currency symbol.
TABLE_HEADERS: dict[str, dict[str, str]] = {
    "zh": {
        "period": "周期",
        "period_start": "开始",
        "period_end": "结束",
        "complete": "已结束",
        "active_start": "期初活跃客户",
        "new": "新增",
        "reactivated": "回流",
        "churned": "流失",
        "active_end": "期末活跃客户",
        "purchasers": "购买客户",
        "churn_rate": "流失率",
        "tier_a": "期初等级",
        "customers": "客户数",
        "upgraded": "升级",
        "unchanged": "不变",
        "downgraded": "降级",
        "upgrade_rate": "升级率",
        "downgrade_rate": "降级率",
        "quadrant": "价值象限",
        "value_grade": "价值等级",
        "revenue": "净消费额（{currency}）",
        "orders": "订单数",
        "customer_share": "客户占比",
        "revenue_share": "消费额占比",
        "aov": "客单价（{currency}）",
        "orders_per_customer": "人均订单数",
        "top_customer_share": "头部客户比例",
        "points": "积分",
        "points_balance": "积分余额",
        "points_expired_unposted": "已过期未核销积分",
        "points_outstanding": "有效积分",
        "liability": "积分负债（{currency}）",
        "value": "价值（{currency}）",
        "expiry_month": "到期月份",
        "expiry_date": "到期日",
        "campaign_id": "活动编号",
        "name": "名称",
        "channel": "渠道",
        "start_at": "开始",
        "end_at": "结束",
        "treatment_contacts": "实验组触达",
        "treatment_responders": "实验组响应",
        "control_contacts": "对照组触达",
        "control_responders": "对照组响应",
        "treatment_rate": "实验组响应率",
        "control_rate": "对照组响应率",
        "uplift": "响应率提升（百分点）",
        "uplift_ci_low": "提升下限（百分点）",
        "uplift_ci_high": "提升上限（百分点）",
        "p_value": "p值",
        "significant": "显著",
        "incremental_responders": "增量响应人数",
        "segment": "分群",
        "tier": "会员等级",
        "owner_id": "负责人编号",
        "owner_name": "负责人",
        "band": "风险档",
        "p_churn_mean": "平均流失概率",
        "expected_churners": "预计流失人数",
        # As the lists name them (LIST_HEADERS): the same numbers, the same words.
        "revenue_12m": "近12个月净消费额（{currency}）",
        "revenue_at_risk": "流失风险金额（{currency}）",
        "revenue_at_risk_rate": "风险金额占本组消费额",
        "share_of_total_at_risk": "占全部客户风险金额",
    },
    "en": {
        "period": "Period",
        "period_start": "Start",
        "period_end": "End",
        "complete": "Ended",
        "active_start": "Active at start",
        "new": "New",
        "reactivated": "Reactivated",
        "churned": "Churned",
        "active_end": "Active at end",
        "purchasers": "Purchasers",
        "churn_rate": "Churn rate",
        "tier_a": "Tier at start",
        "customers": "Customers",
        "upgraded": "Upgraded",
        "unchanged": "Unchanged",
        "downgraded": "Downgraded",
        "upgrade_rate": "Upgrade rate",
        "downgrade_rate": "Downgrade rate",
        "quadrant": "Value quadrant",
        "value_grade": "Value grade",
        "revenue": "Net revenue ({currency})",
        "orders": "Orders",
        "customer_share": "Share of customers",
        "revenue_share": "Share of revenue",
        "aov": "Average order value ({currency})",
        "orders_per_customer": "Orders per customer",
        "top_customer_share": "Top share of customers",
        "points": "Points",
        "points_balance": "Points balance",
        "points_expired_unposted": "Expired, not yet written off",
        "points_outstanding": "Outstanding points",
        "liability": "Points liability ({currency})",
        "value": "Value ({currency})",
        "expiry_month": "Expiry month",
        "expiry_date": "Expiry date",
        "campaign_id": "Campaign",
        "name": "Name",
        "channel": "Channel",
        "start_at": "Start",
        "end_at": "End",
        "treatment_contacts": "Treatment contacts",
        "treatment_responders": "Treatment responders",
        "control_contacts": "Control contacts",
        "control_responders": "Control responders",
        "treatment_rate": "Treatment response rate",
        "control_rate": "Control response rate",
        "uplift": "Uplift (pp)",
        "uplift_ci_low": "Uplift, CI low (pp)",
        "uplift_ci_high": "Uplift, CI high (pp)",
        "p_value": "p-value",
        "significant": "Significant",
        "incremental_responders": "Incremental responders",
        "segment": "Segment",
        "tier": "Tier",
        "owner_id": "Owner id",
        "owner_name": "Owner",
        "band": "Risk band",
        "p_churn_mean": "Mean churn probability",
        "expected_churners": "Expected churners",
        "revenue_12m": "Net revenue, 12 months ({currency})",
        "revenue_at_risk": "Revenue at risk ({currency})",
        "revenue_at_risk_rate": "At risk, share of the group's revenue",
        "share_of_total_at_risk": "Share of all customers' revenue at risk",
    },
}

#: How a group with no segment, tier or owner is named, per index level and language.
GROUP_LABELS: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        "segment": {NO_SEGMENT: "（不在以上分群）"},
        "tier": {NO_TIER: "（无等级）"},
        "tier_a": {NO_TIER: "（无等级）"},
        "owner_id": {NO_OWNER: "（未分配负责人）"},
    },
    "en": {
        "segment": {NO_SEGMENT: "(in none of these segments)"},
        "tier": {NO_TIER: "(no tier)"},
        "tier_a": {NO_TIER: "(no tier)"},
        "owner_id": {NO_OWNER: "(unassigned)"},
    },
}

_FLAGS = {"zh": ("是", "否"), "en": ("yes", "no")}
_MISSING = "—"


def currency_symbol(currency: str) -> str:
    """Return the symbol of a currency code (``CNY`` -> ``¥``), or the code itself."""
    return CURRENCY_SYMBOLS.get(currency, currency).strip()


def _check_lang(lang: str) -> None:
    if lang not in TABLE_HEADERS:
        raise ConfigError(
            f"lang={lang!r} is not supported; use one of {', '.join(TABLE_HEADERS)} "
            "(settings.language, from CRM_ML_LANGUAGE)."
        )


def table_headers(lang: str, *, currency: str = "CNY") -> dict[str, str]:
    """Return the header of each analysis column in ``lang``, money headers naming ``currency``.

    Raises
    ------
    ConfigError
        If ``lang`` is not ``zh`` or ``en``.
    """
    _check_lang(lang)
    symbol = currency_symbol(currency)
    return {column: text.format(currency=symbol) for column, text in TABLE_HEADERS[lang].items()}


def group_label(level: Hashable, value: Any, lang: str) -> Any:
    """Return how ``value`` of index level ``level`` reads in ``lang``: the markers localised."""
    _check_lang(lang)
    names = GROUP_LABELS[lang].get(str(level), {})
    return names.get(value, value) if isinstance(value, str) else value


def _formatter(kind: str, lang: str) -> Callable[[float], str]:
    """How a value of a column of ``kind`` is written; missing values are written elsewhere."""
    yes, no = _FLAGS[lang]
    formats: dict[str, Callable[[float], str]] = {
        "count": lambda v: f"{v:,.0f}",
        "rate": lambda v: f"{v:.1%}",
        "points_diff": lambda v: f"{100 * v:+.1f}",
        "money": lambda v: f"{v:,.0f}",
        "estimate": lambda v: f"{v:,.1f}",
        "ratio": lambda v: f"{v:,.2f}",
        "p_value": lambda v: f"{v:.3f}",
        "flag": lambda v: yes if v else no,
    }
    return formats[kind]


def _shown_values(values: pd.Series | pd.Index, kind: str | None, lang: str) -> list[object]:
    """``values`` written as a column of ``kind`` is shown; as they are without a kind."""
    if kind is None:
        return list(values)
    write = _formatter(kind, lang)
    return [_MISSING if _is_missing(v) else write(v) for v in values]


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _shown_index(index: pd.Index, lang: str, headers: dict[str, str]) -> pd.Index:
    """Return the index with localised markers, formatted values and header-named levels."""
    levels = []
    for position, name in enumerate(index.names):
        values = index.get_level_values(position)
        if name is None:
            # A frame's sum (``frame.sum().to_frame()``) is indexed by its column names.
            shown: list[object] = [headers.get(str(v), v) for v in values]
        else:
            shown = [group_label(name, v, lang) for v in values]
            shown = _shown_values(pd.Index(shown), COLUMN_KINDS.get(str(name)), lang)
        levels.append(shown)
    names = [headers.get(str(n), n) if n is not None else None for n in index.names]
    if len(levels) == 1:
        return pd.Index(levels[0], name=names[0], dtype="object")
    return pd.MultiIndex.from_arrays(levels, names=names)


def report_table(frame: pd.DataFrame, lang: str, *, currency: str = "CNY") -> pd.DataFrame:
    """Return an analysis table as a report shows it: headers, percentages, money in ``lang``.

    For display only: the values become text. Keep the analysis's own frame
    for anything computed from it.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table of :mod:`crm_ml.analysis` (e.g. :func:`~crm_ml.analysis.revenue_at_risk`),
        with the code's column names.
    lang : str
        ``"zh"`` or ``"en"`` (``settings.language``).
    currency : str
        Currency code of the money columns (``settings.currency``), named in
        their headers by its symbol.

    Returns
    -------
    pandas.DataFrame
        The same rows and columns, in the same order; columns and index levels
        named by :data:`TABLE_HEADERS` (columns without a header keep their
        names), the no-segment, no-tier and no-owner markers by
        :data:`GROUP_LABELS`; rates as percentages with one decimal, uplifts in
        percentage points, money and counts as whole numbers with thousands
        separators, flags as yes/no, missing numbers as ``—``.

    Raises
    ------
    ConfigError
        If ``lang`` is not ``zh`` or ``en``.
    """
    headers = table_headers(lang, currency=currency)
    columns = {}
    for position, column in enumerate(frame.columns):
        values, kind = frame.iloc[:, position], COLUMN_KINDS.get(str(column))
        # Text and dates keep their dtype, so a date column still reads as dates.
        columns[position] = values.to_numpy() if kind is None else _shown_values(values, kind, lang)
    shown = pd.DataFrame(columns, index=_shown_index(frame.index, lang, headers))
    return shown.set_axis([headers.get(str(c), c) for c in frame.columns], axis="columns")
