"""Customer records: profiles, identities, custom fields, and duplicate records of one person.

A few percent of people register twice (say in a store, then in the
mini-program): the second record shares their verified phone but spells the
name differently (traditional characters, a space, ``张女士``; a nickname or a
misspelling in English). Some later purchases land on that record, as they
would before the duplicates are merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.names import EN_VARIANTS, ZH_TRADITIONAL, NamePools
from crm_ml.demo.population import People
from crm_ml.demo.timeline import Timeline
from crm_ml.store.schema import CHANNELS

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

DUPLICATE_SHARE = 0.03
#: Share of a duplicated person's purchases after the second sign-up that land on it.
DUPLICATE_PURCHASE_SHARE = 0.4


@dataclass
class Records:
    """``customer`` rows (records) and the people behind them.

    Attributes
    ----------
    offset : int
        Global number of the first record (records are generated in chunks).
    customer_id : pandas.Series
        Identifier of each record, numbered in order of creation.
    person : ndarray
        Person behind each record.
    created : ndarray
        Day each record was created.
    channel : ndarray
        Acquisition channel of each record.
    primary, duplicate : ndarray
        Per person, the index of their first record and of their duplicate (-1 if none).
    member_day : ndarray
        Day each record joined the programme (``inf`` if never); set once purchases are known.
    """

    offset: int
    customer_id: pd.Series
    person: I64
    created: F64
    channel: I64
    primary: I64
    duplicate: I64
    member_day: F64

    @property
    def is_duplicate(self) -> NDArray[np.bool_]:
        """Whether each record is a person's second record."""
        return self.primary[self.person] != np.arange(self.person.size)


def draw_records(
    people: People, timeline: Timeline, id_offset: int, rng: np.random.Generator
) -> Records:
    """Create each person's record and, for a few, a later duplicate record."""
    n = people.n
    dup_day = people.signup + rng.exponential(200.0, size=n)
    dup = np.flatnonzero((rng.random(n) < DUPLICATE_SHARE) & (dup_day < timeline.n_days))
    person = np.concatenate([np.arange(n), dup])
    created = np.concatenate([people.signup, dup_day[dup]])
    other = (people.channel[dup] + rng.integers(1, len(CHANNELS), dup.size)) % len(CHANNELS)
    channel = np.concatenate([people.channel, other])
    order = np.argsort(created, kind="stable")
    person, created, channel = person[order], created[order], channel[order]
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    duplicate = np.full(n, -1)
    duplicate[dup] = position[n:]
    ids = _text.ids("C", id_offset, person.size, 8)
    return Records(
        id_offset,
        ids,
        person,
        created,
        channel,
        position[:n],
        duplicate,
        np.full(person.size, np.inf),
    )


def _given(male: NDArray[np.bool_], pools: NamePools, rng: np.random.Generator) -> pd.Series:
    n_female, n_male = len(pools.female_given), len(pools.male_given)
    index = np.where(
        male, n_female + rng.integers(0, n_male, male.size), rng.integers(0, n_female, male.size)
    )
    return _text.pick(pools.female_given + pools.male_given, index)


def person_names(people: People, pools: NamePools, rng: np.random.Generator) -> pd.Series:
    """Full names: ``张伟``/``李晓雯``-style in Chinese, ``Olivia Smith`` in English."""
    n = people.n
    surname = _text.pick(pools.surnames, rng.integers(0, len(pools.surnames), n))
    male = np.where(people.gender == 2, rng.random(n) < 0.5, people.gender == 1)
    first = _given(male, pools, rng)
    if not pools.chinese:
        return _text.join(first, " ", surname)
    second = _given(male, pools, rng).where(rng.random(n) < 0.75, "")
    return _text.join(surname, first, second)


def variant_name(name: str, gender: int, how: int, chinese: bool) -> str:
    """Spell ``name`` as a duplicate record might (one of four ways, picked by ``how``)."""
    if chinese:
        if how == 0:
            return name.translate(ZH_TRADITIONAL)
        if how == 1:
            return f"{name[0]} {name[1:]}"
        if how == 2:
            return name[0] + ("先生" if gender == 1 else "女士")
        return name[0] + name[1:][::-1]
    first, _, last = name.partition(" ")
    options = (
        f"{EN_VARIANTS.get(first, first[:-1] or first)} {last}",
        f"{first[0]}. {last}",
        f"{last.upper()} {first}",
        name.lower(),
    )
    return options[how]


def customer_frame(
    records: Records,
    people: People,
    names: pd.Series,
    pools: NamePools,
    timeline: Timeline,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Rows of the ``customer`` table."""
    p = records.person
    name = names.to_numpy()[p].astype(object)
    dup = np.flatnonzero(records.is_duplicate)
    how = rng.integers(0, 4, dup.size)
    name[dup] = [
        variant_name(name[r], int(people.gender[p[r]]), int(h), pools.chinese)
        for r, h in zip(dup, how, strict=True)
    ]
    city = np.where(rng.random(p.size) < 0.03 * records.is_duplicate, -1, people.city[p])
    tiers = np.array([t for _, t, _ in pools.cities])
    birth = timeline.start - (people.age[p] * 365.25).astype(np.int64).astype("timedelta64[D]")
    birth_missing = rng.random(p.size) < np.where(records.is_duplicate, 0.5, 0.08)
    member = np.isfinite(records.member_day)
    return pd.DataFrame(
        {
            "customer_id": records.customer_id,
            "name": pd.Series(name, dtype="str"),
            "gender": _text.pick(
                ["female", "male"], np.where(people.gender[p] == 2, -1, people.gender[p])
            ),
            "birth_date": pd.Series(birth.astype("datetime64[us]")).where(~birth_missing),
            "city": _text.pick([c for c, _, _ in pools.cities], city),
            "city_tier": pd.Series(tiers[np.maximum(city, 0)], dtype="Int64").where(city >= 0),
            "acquisition_channel": _text.pick(CHANNELS, records.channel),
            "is_member": member,
            "member_since": pd.Series(
                timeline.timestamps(np.where(member, records.member_day, 0.0))
            ).where(member),
            "status": "active",
            "merged_into": pd.Series([None] * p.size, dtype="str"),
            "created_at": timeline.timestamps(records.created),
        }
    )
