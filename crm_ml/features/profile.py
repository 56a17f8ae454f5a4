"""Profile: age band, gender, city tier, acquisition channel, membership, consent, owner.

The customer table holds today's profile. Where ``customer_change`` records a
change of gender, acquisition channel or city tier on or after ``as_of``, the
value before the earliest such change is used, so that a later correction
does not leak into an earlier snapshot.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from crm_ml.features.backend import Snapshot
from crm_ml.features.identity import population
from crm_ml.features.spec import (
    CONSENT_FEATURE_CHANNELS,
    DType,
    Feature,
    FeatureGroup,
    FeatureWindows,
    Fill,
)
from crm_ml.store.normalize import CHANNEL_WORDS, GENDER_WORDS, words_for

NAME = "profile"
NAN = float("nan")
AGE_BANDS = ("under_25", "25_34", "35_44", "45_54", "55_plus", "unknown")
GENDERS = ("female", "male", "unknown")
ACQUISITION_CHANNELS = ("store", "app", "mini_program", "web", "referral", "other", "unknown")
#: The words read as each gender and channel: the customer import's own table, so that a
#: value stored before the import mapped it (or kept in customer_change) reads the same.
_FEMALE = words_for(GENDER_WORDS, "female")
_MALE = words_for(GENDER_WORDS, "male")
_CHANNELS = {code: words_for(CHANNEL_WORDS, code) for code in ACQUISITION_CHANNELS}
#: Profile fields rolled back through ``customer_change``, and their columns there.
ROLLBACK_FIELDS = ("gender", "acquisition_channel", "city_tier")
_DAYS_PER_YEAR = 365.25


def _f(name: str, dtype: DType, unit: str, description: str, fill: Fill) -> Feature:
    return Feature(name, NAME, dtype, unit, description, fill)


def _c(name: str, description: str, categories: tuple[str, ...]) -> Feature:
    return Feature(name, NAME, "category", "label", description, "unknown", categories)


def features(windows: FeatureWindows) -> list[Feature]:
    """Declare the profile group's features, in output order."""
    consents = [
        _f(
            f"consent_{channel}_marketing",
            "bool",
            "flag",
            f"Latest {channel} marketing consent before as_of is 'granted' (unknown = no).",
            False,
        )
        for channel in CONSENT_FEATURE_CHANNELS
    ]
    return [
        _c("age_band", "Age at as_of in whole years (days / 365.25), banded.", AGE_BANDS),
        _c("gender", "Gender as recorded (女/F/female... = female).", GENDERS),
        _f("city_tier", "float64", "level", "City tier 1 (largest) to 6; NaN unknown.", NAN),
        _c(
            "acquisition_channel",
            "How the customer was acquired; other = a value outside the list.",
            ACQUISITION_CHANNELS,
        ),
        _f(
            "is_member",
            "bool",
            "flag",
            "Loyalty member at as_of (member_since before as_of, or no date recorded).",
            False,
        ),
        *consents,
        _f(
            "has_owner",
            "bool",
            "flag",
            "Assigned to an account manager at as_of (assignment started before as_of).",
            False,
        ),
    ]


def _changes_after(snap: Snapshot) -> ir.Table:
    """Per customer, the value before the earliest change on or after ``as_of`` of each field."""
    ch = snap.raw("customer_change")
    ch = ch.filter((ch.changed_at >= snap.as_of) & ch.field.isin(ROLLBACK_FIELDS))
    earliest = ibis.window(
        group_by=[ch.customer_id, ch.field], order_by=[ch.changed_at, ch.change_id]
    )
    ch = ch.mutate(_rank=ibis.row_number().over(earliest))
    ch = ch.filter(ch._rank == 0)
    return ch.group_by("customer_id").agg(
        **{f"_had_{f}": ch.count(where=ch.field == f) for f in ROLLBACK_FIELDS},
        **{f"_old_{f}": ch.old_value.max(where=ch.field == f) for f in ROLLBACK_FIELDS},
    )


def _as_of_value(table: ir.Table, field: str, current: ir.Value) -> ir.Value:
    return ibis.ifelse(table[f"_had_{field}"] > 0, table[f"_old_{field}"], current)


def _gender(snap: Snapshot, value: ir.StringValue) -> ir.StringValue:
    text = snap.strip(value).lower()
    return ibis.cases((text.isin(_FEMALE), "female"), (text.isin(_MALE), "male"), else_="unknown")


def _channel(snap: Snapshot, value: ir.StringValue) -> ir.StringValue:
    text = snap.strip(value).lower()
    named = [(text.isin(words), code) for code, words in _CHANNELS.items() if code != "unknown"]
    return ibis.cases(
        (value.isnull() | text.isin(_CHANNELS["unknown"]), "unknown"), *named, else_="other"
    )


def _age_band(snap: Snapshot, birth: ir.TimestampValue) -> ir.StringValue:
    years = snap.days_before(birth) / _DAYS_PER_YEAR
    return ibis.cases(
        (birth.isnull(), "unknown"),
        (years < 25, "under_25"),
        (years < 35, "25_34"),
        (years < 45, "35_44"),
        (years < 55, "45_54"),
        else_="55_plus",
    )


def _profile(snap: Snapshot) -> ir.Table:
    people = population(snap).select("customer_id")
    customers = people.inner_join(snap.raw("customer"), "customer_id")
    j = customers.left_join(_changes_after(snap), "customer_id")
    old_tier = snap.strip(j._old_city_tier)
    parsed_tier = ibis.cases(*[(old_tier == str(n), n) for n in range(1, 7)], else_=None)
    member = j.is_member & (j.member_since.isnull() | (j.member_since < snap.as_of))
    return j.select(
        "customer_id",
        age_band=_age_band(snap, j.birth_date),
        gender=_gender(snap, _as_of_value(j, "gender", j.gender)),
        city_tier=ibis.ifelse(j._had_city_tier > 0, parsed_tier, j.city_tier).cast("float64"),
        acquisition_channel=_channel(
            snap, _as_of_value(j, "acquisition_channel", j.acquisition_channel)
        ),
        is_member=ibis.ifelse(member, 1, 0),
    )


def _consents(snap: Snapshot) -> ir.Table:
    c = snap.table("consent")
    c = c.filter(
        (c.updated_at < snap.as_of)
        & (c.purpose == "marketing")
        & c.channel.isin(CONSENT_FEATURE_CHANNELS)
    )
    granted = c.status == "granted"
    latest = {}
    for ch in CONSENT_FEATURE_CHANNELS:
        latest[f"_yes_{ch}"] = c.updated_at.max(where=(c.channel == ch) & granted)
        latest[f"_no_{ch}"] = c.updated_at.max(where=(c.channel == ch) & ~granted)
    agg = c.group_by("customer_id").agg(**latest)
    # The latest decision is a grant; on a tie with a withdrawal, the safe reading wins.
    flags = {
        f"consent_{ch}_marketing": ibis.ifelse(
            agg[f"_yes_{ch}"].notnull()
            & (agg[f"_no_{ch}"].isnull() | (agg[f"_no_{ch}"] < agg[f"_yes_{ch}"])),
            1,
            0,
        )
        for ch in CONSENT_FEATURE_CHANNELS
    }
    return agg.select("customer_id", **flags)


def _owners(snap: Snapshot) -> ir.Table:
    o = snap.table("customer_owner")
    # An assignment ending exactly at as_of still held just before it.
    current = (o.valid_from < snap.as_of) & (o.valid_to.isnull() | (o.valid_to >= snap.as_of))
    o = o.filter(current)
    return o.group_by("customer_id").agg(has_owner=o.count())


def expressions(snap: Snapshot) -> list[ir.Table]:
    """Return the profile group's queries, each keyed by ``customer_id``."""
    return [_profile(snap), _consents(snap), _owners(snap)]


GROUP = FeatureGroup(
    name=NAME,
    description="Profile: age band, gender, city tier, acquisition channel, membership, "
    "marketing consent, account owner.",
    features=features,
    expressions=expressions,
)
