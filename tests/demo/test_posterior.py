"""The recorded-data posterior: Bayes' rule on the tables alone, under the generator's law."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.special import betaln, gammaln

from crm_ml.demo import posterior as post
from crm_ml.demo.posterior import Records, histories, read_records, recorded_posterior
from crm_ml.demo.timeline import Timeline

START, END = "2023-01-01", "2025-12-31"  # the period of the shared generated store (conftest)

AS_OF = pd.Timestamp("2025-07-01")
TIMELINE = Timeline.build(START, END, "zh_CN")


def _at(day: float) -> pd.Timestamp:
    """The timestamp the generator writes for ``day`` (days since the start, zh_CN)."""
    return pd.Timestamp(TIMELINE.timestamps(np.array([day]))[0])


def _records(
    orders: dict[str, list[float]],
    views: dict[str, list[float]] | None = None,
    complaints: dict[str, list[float]] | None = None,
    signup: float = 100.3,
) -> Records:
    def rows(days: dict[str, list[float]], kind: str | None) -> pd.DataFrame:
        frame = pd.DataFrame(
            [(c, _at(d)) for c, ds in days.items() for d in ds], columns=["customer_id", "at"]
        )
        if kind is None:
            return frame.rename(columns={"at": "ordered_at"})
        return frame.rename(columns={"at": "occurred_at"}).assign(event_type=kind)

    customers = pd.DataFrame(
        {
            "customer_id": list(orders),
            "created_at": [_at(signup)] * len(orders),
            "acquisition_channel": ["app"] * len(orders),
        }
    )
    events = pd.concat([rows(views or {}, "page_view"), rows(complaints or {}, "complaint")])
    return Records(customers, rows(orders, None), events)


def _posterior(records: Records, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    return recorded_posterior(histories(records, as_of, TIMELINE), TIMELINE)


def test_timestamps_map_back_to_their_days() -> None:
    days = np.array([0.0, 10.25, 500.5, 900.999])
    stamps = pd.Series(TIMELINE.timestamps(days))
    assert post.days_since_start(stamps, TIMELINE) == pytest.approx(days, abs=1e-4)


def test_browsing_after_the_last_order_says_still_a_customer() -> None:
    last = TIMELINE.day_of(AS_OF) - 200
    records = _records(
        {"browses": [150.0, last], "silent": [150.0, last]},
        views={"browses": list(np.linspace(last + 20, last + 190, 12))},
    )
    p = _posterior(records)["p_alive"]
    assert p["browses"] > 0.8 > p["silent"]


def test_a_complaint_after_the_last_order_then_silence_lowers_p_alive() -> None:
    last = TIMELINE.day_of(AS_OF) - 120
    views = list(np.linspace(200, last, 15))
    records = _records(
        {"complained": [150.0, last], "calm": [150.0, last]},
        views={"complained": views, "calm": views},
        complaints={"complained": [last + 5]},
    )
    p = _posterior(records)["p_alive"]
    assert p["complained"] < p["calm"]


def test_only_records_before_as_of_count() -> None:
    now = TIMELINE.day_of(AS_OF)
    base = _records({"C1": [150.0, now - 90]}, views={"C1": [now - 30]})
    later = _records(
        {"C1": [150.0, now - 90, now + 1]},
        views={"C1": [now - 30, now + 2, now + 40]},
        complaints={"C1": [now + 3]},
    )
    pd.testing.assert_frame_equal(_posterior(base), _posterior(later))


def test_survivors_pool_their_merged_records() -> None:
    now = TIMELINE.day_of(AS_OF)
    split = _records({"A": [150.0], "B": [now - 10]}, signup=100.3)
    pooled = recorded_posterior(histories(split, AS_OF, TIMELINE, {"B": "A"}), TIMELINE)
    alone = _posterior(_records({"A": [150.0, now - 10]}))
    assert pooled.index.tolist() == ["A"]
    pd.testing.assert_frame_equal(pooled, alone)


@pytest.mark.parametrize("complaint", [None, 560.0], ids=["orders only", "then a complaint"])
def test_without_browsing_it_is_the_integral_over_when_they_left(complaint: float | None) -> None:
    """One customer without page views: the grid over silent leaving times against quadrature."""
    now = TIMELINE.day_of(AS_OF)
    s, orders = 100.3, [250.0, 400.0, 520.0]
    records = _records(
        {"C1": orders}, complaints={"C1": [complaint]} if complaint else {}, signup=s
    )
    got = _posterior(records).loc["C1", "p_alive"]

    r, scale, (a, b), h = (
        post.RATE_SHAPE,
        post.RATE_SCALE,
        post.DROPOUT_BETA,
        post.BACKGROUND_HAZARD,
    )
    x = len(orders)  # no purchase at sign-up: all three are Poisson purchases
    mass = lambda t: float(TIMELINE.mass(np.array([t]))[0])  # noqa: E731

    def purchases(end: float) -> float:
        return np.exp(gammaln(r + x) - (r + x) * np.log(scale + mass(end) - mass(s)))

    def browsing(leave: float) -> float:  # no page views: only the expected browsing counts
        per_year = post.BROWSE_PER_YEAR[True] * post.PAGE_VIEW_SHARE / 365.0
        mean = per_year * np.exp(post.BROWSE_LOG_MEAN + post.BROWSE_LOG_SD**2 / 2)
        exposure = post._Clock(TIMELINE).browse_exposure(np.array([leave]), np.array([s]), now)
        return float((post.BROWSE_SHAPE / mean + exposure[0]) ** -post.BROWSE_SHAPE)

    def left_at(day: float, coin: float) -> float:
        return purchases(day) * coin * np.exp(-h * (day - s)) * browsing(day)

    survive = np.exp(betaln(a, b + x))
    kept = 1 - post.COMPLAINT_FATALITY if complaint else 1.0  # a survived complaint
    alive = purchases(now) * survive * kept * np.exp(-h * (now - s)) * browsing(post.STILL_HERE)
    if complaint:  # it ended the relationship; leaving at the last order is ruled out
        ended = left_at(complaint, survive * post.COMPLAINT_FATALITY)
    else:
        ended = left_at(orders[-1], np.exp(betaln(a + 1, b + x - 1)))
    silent, _ = integrate.quad(
        lambda d: left_at(d, survive * kept) * h, complaint or orders[-1], now, limit=200
    )
    assert got == pytest.approx(alive / (alive + ended + silent), abs=2e-3)


def test_it_knows_who_is_still_a_customer(generated) -> None:
    truth = generated.summary.truth
    snap = truth[truth["as_of"] == AS_OF].set_index("customer_id")
    got = recorded_posterior(histories(read_records(generated.store), AS_OF, TIMELINE), TIMELINE)
    both = got.join(snap["is_alive"], how="inner")
    assert len(both) > 1_000
    alive = both["is_alive"].to_numpy(bool)
    # Calibrated: as many alive as it expects (measured 0.404 vs 0.403 at this seed).
    assert both["p_alive"].mean() == pytest.approx(alive.mean(), abs=0.03)
    # And it ranks them far better than chance (measured 0.957).
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(alive, both["p_alive"]) > 0.9
