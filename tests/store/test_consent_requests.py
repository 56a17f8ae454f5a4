"""Withdrawing consent on every channel in one call ("不要再给我发任何营销信息")."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crm_ml.errors import NotFoundError, ValidationError
from crm_ml.rules.context import consent_status_at
from crm_ml.store import Store
from crm_ml.store.consent_requests import withdraw_consent, withdrawal_rows
from crm_ml.store.schema import CONSENT_CHANNELS, Base, Consent, LoadBatch

T = datetime(2024, 1, 1)
AT = datetime(2024, 6, 1, 10, 30)


def _customer(cid: str, **extra) -> dict:
    base = {"customer_id": cid, "is_member": True, "created_at": T, "status": "active"}
    return base | {"merged_into": None} | extra


@pytest.fixture
def granted(store: Store, tmp_path, monkeypatch) -> Store:
    """C1 and C3 granted marketing and service on every channel; M1 was merged into C1."""
    monkeypatch.chdir(tmp_path)  # where a reject report would go
    customers = [
        _customer("C1"),
        _customer("C3"),
        _customer("M1", status="merged", merged_into="C1"),
    ]
    grants = [
        {
            "customer_id": cid,
            "channel": channel,
            "purpose": purpose,
            "updated_at": T,
            "status": "granted",
            "source": "pos",
        }
        for cid in ("C1", "C3")
        for channel in CONSENT_CHANNELS
        for purpose in ("marketing", "service")
    ]
    with store.begin() as conn:
        conn.execute(Base.metadata.tables["customer"].insert(), customers)
        conn.execute(Base.metadata.tables["consent"].insert(), grants)
    return store


def _statuses(store: Store, purpose: str, customer_id: str) -> dict[str, str]:
    with store.connect() as conn:
        return {
            channel: str(consent_status_at(conn, channel, purpose, None).get(customer_id))
            for channel in CONSENT_CHANNELS
        }


def _consent_rows(store: Store, at: datetime) -> list[tuple]:
    query = select(Consent.customer_id, Consent.channel, Consent.purpose, Consent.status).where(
        Consent.updated_at == at
    )
    with store.connect() as conn:
        return sorted(map(tuple, conn.execute(query)))


def test_withdrawing_marketing_covers_every_channel_and_leaves_service(granted):
    result = withdraw_consent(granted, ["C1"], purpose="marketing", source="call_center", at=AT)
    assert result.channels == CONSENT_CHANNELS
    assert (result.load.inserted, result.load.rejected) == (5, 0)
    assert _statuses(granted, "marketing", "C1") == dict.fromkeys(CONSENT_CHANNELS, "withdrawn")
    assert _statuses(granted, "service", "C1") == dict.fromkeys(CONSENT_CHANNELS, "granted")
    assert _statuses(granted, "marketing", "C3") == dict.fromkeys(CONSENT_CHANNELS, "granted")


def test_named_channels_only_and_each_row_records_its_source(granted):
    withdraw_consent(
        granted, ["C1", "C3", "C1"], purpose="marketing", source="sms_reply",
        channels=["sms", "email"], at=AT,
    )  # fmt: skip
    assert _consent_rows(granted, AT) == [
        ("C1", "email", "marketing", "withdrawn"),
        ("C1", "sms", "marketing", "withdrawn"),
        ("C3", "email", "marketing", "withdrawn"),
        ("C3", "sms", "marketing", "withdrawn"),
    ]
    with granted.connect() as conn:
        query = select(Consent.source).where(Consent.updated_at == AT)
        sources = set(conn.execute(query).scalars())
        batches = list(conn.execute(select(LoadBatch.table_name, LoadBatch.source)))
    assert sources == {"sms_reply"}
    assert batches == [("consent", "consent withdrawal (sms_reply)")]


def test_a_merged_away_id_withdraws_for_the_person(granted):
    withdraw_consent(granted, ["M1"], purpose="marketing", source="call_center", at=AT)
    assert _statuses(granted, "marketing", "C1") == dict.fromkeys(CONSENT_CHANNELS, "withdrawn")


def test_recording_the_same_request_twice_writes_once(granted):
    withdraw_consent(granted, ["C1"], purpose="marketing", source="call_center", at=AT)
    again = withdraw_consent(granted, ["C1"], purpose="marketing", source="call_center", at=AT)
    assert (again.load.inserted, again.load.unchanged) == (0, 5)


def test_the_summary_names_channels_and_the_purposes_not_withdrawn(granted):
    result = withdraw_consent(
        granted, ["C1"], purpose="marketing", source="call_center", channels=["sms"], at=AT
    )
    assert result.summary().splitlines() == [
        "Recorded marketing consent withdrawn on sms for 1 customer(s) at 2024-06-01 10:30:00 "
        "UTC: 1 consent row(s) written, 0 already recorded.",
        "Lists exported for service or research still include them; withdraw those purposes "
        "too if the customer asked to stop all contact. Lists already sent are not recalled "
        "(find them with `crm-ml lists find ID`).",
    ]


def test_without_a_time_the_withdrawal_is_recorded_now(granted):
    before = datetime.now(UTC).replace(tzinfo=None)
    result = withdraw_consent(granted, ["C1"], purpose="marketing", source="call_center")
    assert before <= result.at <= datetime.now(UTC).replace(tzinfo=None)
    assert len(_consent_rows(granted, result.at)) == 5


@pytest.mark.parametrize(
    ("ids", "kwargs", "error", "match"),
    [
        (["C1", "C9"], {}, NotFoundError, r"1 customer id\(s\) are not in the store: C9"),
        ([], {}, ValidationError, "at least one customer id"),
        (["C1", " "], {}, ValidationError, "no blank ones"),
        (["C1"], {"purpose": "sales"}, ValidationError, "Unknown purpose 'sales'"),
        (["C1"], {"channels": ["sms", "fax"]}, ValidationError, r"Unknown channel\(s\) 'fax'"),
        (["C1"], {"source": " "}, ValidationError, "needs a source"),
    ],
)
def test_a_bad_request_is_refused_and_nothing_is_written(granted, ids, kwargs, error, match):
    options = {"purpose": "marketing", "source": "call_center", "at": AT} | kwargs
    with pytest.raises(error, match=match):
        withdraw_consent(granted, ids, **options)
    assert _consent_rows(granted, AT) == []


def test_withdrawal_rows_cover_every_customer_channel_and_purpose():
    rows = withdrawal_rows(
        ["C1", "C2"], channels=["sms", "email"], purposes=["marketing", "service"], at=AT,
        source="erasure",
    )  # fmt: skip
    assert list(rows.columns) == [
        "customer_id", "channel", "purpose", "updated_at", "status", "source"
    ]  # fmt: skip
    assert len(rows) == 8
    assert set(rows["status"]) == {"withdrawn"}
    assert rows.drop_duplicates(["customer_id", "channel", "purpose"]).shape[0] == 8
