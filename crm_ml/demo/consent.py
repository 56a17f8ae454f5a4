"""Marketing, service and research consent per channel, as answered and later withdrawn.

Each person is asked at sign-up on the channels they can be reached by (every
person has a phone, so SMS and calls; email, WeChat and app push when they
have them). Marketing answers are granted, declined (stored as ``withdrawn``),
explicitly ``unknown``, or never recorded. Granted marketing consent is later
withdrawn at a steady rate, by people a campaign put off, and often after a
complaint that ended the relationship. Campaigns only contact people whose
marketing consent on the campaign's channel is granted at the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo.population import People
from crm_ml.demo.timeline import Timeline
from crm_ml.store.schema import CONSENT_CHANNELS

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

GRANTED, DECLINED, UNKNOWN, NO_ROW = 0, 1, 2, 3
_STATUS = np.array(["granted", "withdrawn", "unknown", ""])
#: P(granted) for marketing at sign-up, per channel (sms, email, wechat, phone, app_push).
_GRANT_P = np.array([0.65, 0.55, 0.75, 0.30, 0.60])
_WITHDRAW_PER_DAY = 0.08 / 365.0


@dataclass
class ConsentState:
    """Marketing consent of each person on each channel (columns in ``CONSENT_CHANNELS`` order).

    Attributes
    ----------
    reachable : ndarray
        ``(n, 5)`` whether the person can be reached on the channel at all.
    answer : ndarray
        ``(n, 5)`` answer at sign-up: GRANTED, DECLINED, UNKNOWN or NO_ROW.
    withdrawn_day : ndarray
        ``(n, 5)`` day a granted consent was withdrawn (``inf`` if never).
    withdrawn_source : ndarray
        ``(n, 5)`` how it was withdrawn (text).
    """

    reachable: NDArray[np.bool_]
    answer: I64
    withdrawn_day: F64
    withdrawn_source: NDArray[np.str_]

    def granted(self, channel: str, who: I64, day: F64, signup: F64) -> NDArray[np.bool_]:
        """Whether the marketing consent of people ``who`` on ``channel`` is granted on ``day``."""
        c = CONSENT_CHANNELS.index(channel)
        answer, withdrawn = self.answer[who, c], self.withdrawn_day[who, c]
        return (answer == GRANTED) & (signup[who] <= day) & (withdrawn > day)

    def withdraw(self, who: I64, channels: I64, day: F64, source: str) -> None:
        """Withdraw granted consents ``(who, channel)`` on ``day`` unless already withdrawn."""
        live = (self.answer[who, channels] == GRANTED) & (day < self.withdrawn_day[who, channels])
        who, channels, day = who[live], channels[live], day[live]
        self.withdrawn_day[who, channels] = day
        self.withdrawn_source[who, channels] = source


def draw_consent(people: People, rng: np.random.Generator) -> ConsentState:
    """Draw marketing answers at sign-up and steady withdrawals afterwards."""
    n = people.n
    reachable = np.column_stack(
        [np.ones(n, bool), people.has_email, people.has_wechat, np.ones(n, bool), people.app_user]
    )
    u = rng.random((n, len(CONSENT_CHANNELS)))
    answer = np.where(u < _GRANT_P, GRANTED, NO_ROW)
    answer = np.where((u >= _GRANT_P) & (u < _GRANT_P + 0.10), DECLINED, answer)
    answer = np.where((u >= _GRANT_P + 0.10) & (u < _GRANT_P + 0.20), UNKNOWN, answer)
    answer = np.where(reachable, answer, NO_ROW)
    later = people.signup[:, None] + rng.exponential(1.0 / _WITHDRAW_PER_DAY, size=u.shape)
    withdrawn = np.where(answer == GRANTED, later, np.inf)
    source = np.full(u.shape, "preference_center", dtype="<U20")
    return ConsentState(reachable, answer, withdrawn, source)


def withdraw_after_complaints(
    state: ConsentState, who: I64, day: F64, rng: np.random.Generator
) -> None:
    """Half of the people who leave after a complaint also withdraw all marketing consent."""
    chosen = rng.random(who.size) < 0.5
    who, day = who[chosen], day[chosen] + rng.uniform(0.0, 2.0, int(chosen.sum()))
    n_ch = len(CONSENT_CHANNELS)
    state.withdraw(
        np.repeat(who, n_ch),
        np.tile(np.arange(n_ch), who.size),
        np.repeat(day, n_ch),
        "customer_service",
    )


def consent_rows(
    state: ConsentState,
    people: People,
    record_id: NDArray[np.str_],
    timeline: Timeline,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Rows of the ``consent`` table for each person's primary record.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, channel, purpose, updated_at, status, source``.
    """
    person, ch = np.nonzero(state.answer != NO_ROW)
    asked = pd.DataFrame(
        {
            "person": person,
            "ch": ch,
            "purpose": "marketing",
            "day": people.signup[person],
            "status": _STATUS[state.answer[person, ch]],
            "source": "registration",
        }
    )
    w_person, w_ch = np.nonzero(state.withdrawn_day < timeline.n_days)
    withdrawn = pd.DataFrame(
        {
            "person": w_person,
            "ch": w_ch,
            "purpose": "marketing",
            "day": state.withdrawn_day[w_person, w_ch],
            "status": "withdrawn",
            "source": state.withdrawn_source[w_person, w_ch],
        }
    )
    frame = pd.concat([asked, withdrawn, _other_purposes(state, people, rng)], ignore_index=True)
    return pd.DataFrame(
        {
            "customer_id": record_id[frame["person"].to_numpy()],
            "channel": np.asarray(CONSENT_CHANNELS)[frame["ch"].to_numpy()],
            "purpose": frame["purpose"].to_numpy(),
            "updated_at": timeline.timestamps(frame["day"].to_numpy()),
            "status": frame["status"].to_numpy(),
            "source": frame["source"].to_numpy(),
        }
    )


def _other_purposes(state: ConsentState, people: People, rng: np.random.Generator) -> pd.DataFrame:
    # Service messages over SMS are nearly always accepted; research (surveys) by email less so.
    frames = []
    for ch, purpose, asked_p, grant_p in ((0, "service", 0.9, 0.95), (1, "research", 0.25, 0.45)):
        person = np.flatnonzero(state.reachable[:, ch] & (rng.random(people.n) < asked_p))
        granted = rng.random(person.size) < grant_p
        frames.append(
            pd.DataFrame(
                {
                    "person": person,
                    "ch": ch,
                    "purpose": purpose,
                    "day": people.signup[person],
                    "status": np.where(granted, "granted", "unknown"),
                    "source": "registration",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
