"""Privacy requests from the command line: ``customers erase`` and ``consent withdraw``."""

import pytest
from project_settings import cli_project, import_files
from sqlalchemy import select

from crm_ml.cli import main
from crm_ml.config import Settings
from crm_ml.store import Store
from crm_ml.store.schema import Consent, Customer, CustomerIdentity

FILES = {
    "customer.csv": "customer_id,name,city,created_at\n"
    "C1,王芳,上海,2024-01-01\nC2,李雷,北京,2024-01-01\n",
    "customer_identity.csv": "customer_id,kind,value,verified,created_at\n"
    "C1,phone,13800138000,true,2024-01-01\nC2,phone,13900139000,true,2024-01-01\n",
    "consent.csv": "customer_id,channel,purpose,updated_at,status,source\n"
    "C1,sms,marketing,2024-01-01,granted,pos\nC2,sms,marketing,2024-01-01,granted,pos\n",
}


@pytest.fixture
def project(tmp_path, monkeypatch, capsys):
    """A project whose store holds C1 and C2, each with a phone and an SMS marketing grant."""
    cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    import_files(tmp_path, FILES)
    capsys.readouterr()
    return tmp_path


def _store() -> Store:
    return Store(Settings.from_env().database_url)


def _query(statement) -> list[tuple]:
    store = _store()
    with store.connect() as conn:
        rows = sorted(map(tuple, conn.execute(statement)))
    store.dispose()
    return rows


def test_erase_anonymises_the_customer_and_says_what_it_could_not_reach(project, capsys):
    assert main(["customers", "erase", "C1", "--actor", "合规官", "--reason", "ticket 17"]) == 0
    out = capsys.readouterr().out
    assert "Erased customer C1 (records C1)" in out
    assert "  customer_identity: 1 deleted" in out
    assert "`crm-ml lists find C1`" in out
    assert _query(select(Customer.customer_id, Customer.name, Customer.city)) == [
        ("C1", None, None),
        ("C2", "李雷", "北京"),
    ]
    assert _query(select(CustomerIdentity.customer_id)) == [("C2",)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["C9", "--actor", "合规官", "--reason", "ticket 17"], "'C9' is not in the store"),
        (["C1", "--actor", " ", "--reason", "ticket 17"], "needs an actor and a reason"),
    ],
)
def test_erase_refuses_an_unknown_id_or_a_blank_actor(project, capsys, argv, message):
    assert main(["customers", "erase", *argv]) == 2
    assert message in capsys.readouterr().err
    assert _query(select(Customer.name)) == [("李雷",), ("王芳",)]


def test_erase_requires_actor_and_reason(project, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["customers", "erase", "C1"])
    assert exc.value.code == 2
    assert "--actor" in capsys.readouterr().err


def test_withdraw_marketing_on_every_channel(project, capsys):
    argv = ["consent", "withdraw", "C1", "C2", "--purpose", "marketing", "--source", "call_center"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "withdrawn on sms, email, wechat, phone, app_push for 2 customer(s)" in out
    assert "10 consent row(s) written" in out
    withdrawn = _query(
        select(Consent.customer_id, Consent.channel).where(Consent.status == "withdrawn")
    )
    assert len(withdrawn) == 10


def test_withdraw_named_channels_only(project, capsys):
    argv = ["consent", "withdraw", "C1", "--purpose", "marketing", "--source", "sms_reply"]
    assert main([*argv, "--channel", "sms", "--channel", "email"]) == 0
    assert _query(select(Consent.channel).where(Consent.status == "withdrawn")) == [
        ("email",),
        ("sms",),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--purpose", "marketing", "--channel", "fax", "--source", "x"], "invalid choice: 'fax'"),
        (["--purpose", "marketing"], "--source"),
        (["--source", "x"], "--purpose"),
    ],
)
def test_withdraw_usage_errors(project, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(["consent", "withdraw", "C1", *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_withdraw_an_unknown_id_writes_nothing(project, capsys):
    argv = ["consent", "withdraw", "C1", "C9", "--purpose", "marketing", "--source", "x"]
    assert main(argv) == 2
    assert "not in the store: C9" in capsys.readouterr().err
    assert _query(select(Consent.status)) == [("granted",), ("granted",)]
