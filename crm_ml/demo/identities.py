"""Identifiers of each record (phone, email, WeChat, member card) and custom profile fields.

Phones, e-mails and WeChat ids are unique per person: they are built from the
person's global index through a bijection, so chunks never collide. A
duplicate record shares the person's phone, verified on both, which is what
identity resolution keys on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from crm_ml.demo import _text
from crm_ml.demo.names import NamePools
from crm_ml.demo.population import People
from crm_ml.demo.profiles import Records
from crm_ml.demo.timeline import Timeline

I64 = NDArray[np.int64]

_B36 = np.array(list("0123456789abcdefghijklmnopqrstuvwxyz"))
_ZH_EMAIL_WORDS = (
    "xiaoyu",
    "sunny",
    "lucky",
    "happy",
    "angel",
    "tiger",
    "yuyu",
    "mm",
    "coco",
    "leo",
)


def _scramble(index: I64, modulus: int, salt: int) -> I64:
    # An affine map with a multiplier coprime to the modulus is a bijection: no collisions.
    return (index * 7_919 + salt) % modulus


def _base36(values: I64, width: int) -> pd.Series:
    powers = 36 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars = _B36[(values[:, None] // powers) % 36]
    return pd.Series(np.ascontiguousarray(chars).view(f"<U{width}").ravel(), dtype="str")


def phones(people: People, pools: NamePools, rng: np.random.Generator) -> pd.Series:
    """Each person's mobile number as a shop assistant would type it (some with spaces or +86)."""
    g = np.arange(people.n, dtype=np.int64) + people.offset
    prefix = _text.pick(pools.phone_prefixes, rng.integers(0, len(pools.phone_prefixes), people.n))
    width = 8 if pools.chinese else 9
    suffix = _text.numbered("", _scramble(g, 10**width, 1_234_567), width)
    plain = _text.join(prefix, suffix)
    if not pools.chinese:
        return plain
    spaced = _text.join("+86 ", prefix, " ", suffix.str[:4], " ", suffix.str[4:])
    dashed = _text.join(prefix, "-", suffix.str[:4], "-", suffix.str[4:])
    style = rng.random(people.n)
    return plain.where(style < 0.9, spaced.where(style < 0.95, dashed))


def emails(
    people: People, names: pd.Series, pools: NamePools, rng: np.random.Generator
) -> pd.Series:
    """Return a unique e-mail address per person."""
    g = np.arange(people.n, dtype=np.int64) + people.offset
    number = _text.numbered("", _scramble(g, 10**8, 424_242), 8)
    domain = _text.pick(pools.email_domains, rng.integers(0, len(pools.email_domains), people.n))
    if pools.chinese:
        qq = _text.numbered("", 100_000_000 + _scramble(g, 10**9, 77), 9)
        word = _text.pick(_ZH_EMAIL_WORDS, rng.integers(0, len(_ZH_EMAIL_WORDS), people.n))
        other = _text.join(word, number.str[-6:], "_", number.str[:2], "@", domain)
        return _text.join(qq, "@qq.com").where(rng.random(people.n) < 0.45, other)
    local = names.str.lower().str.replace(" ", ".", regex=False)
    # The suffix alone is unique per person, so two namesakes never share an address.
    return _text.join(local, ".", _base36(_scramble(g, 36**6, 31), 6), "@", domain)


def _identity_parts(
    records: Records, people: People, names: pd.Series, pools: NamePools, rng: np.random.Generator
) -> list[tuple[str, I64, np.ndarray, np.ndarray, np.ndarray]]:
    """(kind, record rows, values, verified, day created) for each kind of identifier."""
    r, p = np.arange(records.person.size), records.person
    g = p.astype(np.int64) + people.offset
    first = ~records.is_duplicate
    phone = phones(people, pools, rng).to_numpy()[p]
    # A duplicate's phone is verified on both records: that is what merging keys on.
    verified = (rng.random(r.size) < 0.85) | (records.duplicate[p] >= 0)
    email = emails(people, names, pools, rng).to_numpy()[p]
    wechat = _text.join("wxid_", _base36(_scramble(g, 36**10, 99), 10)).to_numpy()
    card = _text.numbered("8", _scramble(r + records.offset, 10**11, 5), 11).to_numpy()
    mailed, chatted = first & people.has_email[p], first & people.has_wechat[p]
    member = np.isfinite(records.member_day)
    return [
        ("phone", r, phone, verified, records.created),
        (
            "email",
            r[mailed],
            email[mailed],
            rng.random(int(mailed.sum())) < 0.6,
            records.created[mailed],
        ),
        (
            "wechat",
            r[chatted],
            wechat[chatted],
            rng.random(int(chatted.sum())) < 0.6,
            records.created[chatted],
        ),
        (
            "member_card",
            r[member],
            card[member],
            np.ones(int(member.sum()), bool),
            records.member_day[member],
        ),
    ]


def identity_frame(
    records: Records,
    people: People,
    names: pd.Series,
    pools: NamePools,
    timeline: Timeline,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Rows of the ``customer_identity`` table.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, kind, value, verified, created_at``.
    """
    parts = _identity_parts(records, people, names, pools, rng)
    rows = np.concatenate([part[1] for part in parts])
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[rows],
            "kind": pd.Series(
                np.concatenate([np.full(p[1].size, p[0]) for p in parts]), dtype="str"
            ),
            "value": pd.Series(np.concatenate([p[2] for p in parts]), dtype="str"),
            "verified": np.concatenate([p[3] for p in parts]).astype(bool),
            "created_at": timeline.timestamps(np.concatenate([p[4] for p in parts])),
        }
    )


#: (field id, name, zh label, en label, data type)
CUSTOM_FIELDS = (
    ("F01", "baby_birth_date", "宝宝生日", "Baby's birthday", "date"),
    ("F02", "skin_type", "肤质", "Skin type", "text"),
    ("F03", "clothing_size", "服装尺码", "Clothing size", "text"),
)
_SKIN = {
    "zh_CN": ("干性", "油性", "混合性", "敏感性", "中性"),
    "en": ("dry", "oily", "combination", "sensitive", "normal"),
}
_SIZES = ("S", "M", "L", "XL", "XXL")


def custom_field_frame(pools: NamePools) -> pd.DataFrame:
    """Rows of the ``custom_field`` table."""
    return pd.DataFrame(
        {
            "field_id": [f[0] for f in CUSTOM_FIELDS],
            "name": [f[1] for f in CUSTOM_FIELDS],
            "label": [f[2] if pools.chinese else f[3] for f in CUSTOM_FIELDS],
            "data_type": [f[4] for f in CUSTOM_FIELDS],
        }
    )


def custom_value_frame(
    records: Records,
    people: People,
    pools: NamePools,
    timeline: Timeline,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Rows of ``custom_field_value`` for primary records: filled in by people they concern.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, field_id, value, updated_at``.
    """
    n = people.n
    young_mother = (people.gender == 0) & (people.age >= 22) & (people.age <= 40)
    baby = np.flatnonzero(young_mother & (people.affinity[:, 0] > 0.3) & (rng.random(n) < 0.7))
    born = people.signup[baby] - rng.uniform(-120.0, 700.0, baby.size)
    skin = np.flatnonzero((people.affinity[:, 1] > 0.3) & (rng.random(n) < 0.6))
    size = np.flatnonzero((people.affinity[:, 3] > 0.3) & (rng.random(n) < 0.5))
    skin_pool = _SKIN[pools.locale]
    values = [
        ("F01", baby, pd.Series(timeline.midnights(born)).dt.strftime("%Y-%m-%d").to_numpy()),
        ("F02", skin, _text.pick(skin_pool, rng.integers(0, len(skin_pool), skin.size)).to_numpy()),
        ("F03", size, _text.pick(_SIZES, rng.integers(0, len(_SIZES), size.size)).to_numpy()),
    ]
    person = np.concatenate([v[1] for v in values])
    updated = np.minimum(
        people.signup[person] + rng.exponential(20.0, person.size), timeline.n_days - 0.01
    )
    return pd.DataFrame(
        {
            "customer_id": records.customer_id.to_numpy()[records.primary[person]],
            "field_id": np.concatenate([np.full(v[1].size, v[0]) for v in values]),
            "value": pd.Series(np.concatenate([v[2] for v in values]), dtype="str"),
            "updated_at": timeline.timestamps(updated),
        }
    )
