import pytest

from crm_ml.cli import main


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "crm_ml.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    for var in ("CRM_ML_HOME", "CRM_ML_DATABASE_URL", "MLFLOW_TRACKING_URI", "CRM_ML_REPORTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_init_then_info_shows_an_empty_store(project, capsys):
    assert main(["init"]) == 0
    assert (project / "data" / "crm.duckdb").exists()
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"project root : {project}" in out
    assert "(empty)" in out


def test_info_before_init_fails_with_a_clear_message(project, capsys):
    assert main(["info"]) == 2
    assert "crm-ml init" in capsys.readouterr().err


def test_demo_refuses_to_wipe_a_store_outside_the_data_folder(project, monkeypatch, capsys):
    monkeypatch.setenv("CRM_ML_DATABASE_URL", f"sqlite:///{project / 'elsewhere.db'}")
    assert main(["demo"]) == 2
    assert "will not wipe" in capsys.readouterr().err


def test_bad_as_of_is_a_usage_error(project, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["features", "build", "--as-of", "31/12/2025", "--out", "f.parquet"])
    assert exit_info.value.code == 2
    assert "expected a date like 2025-06-30" in capsys.readouterr().err


def test_tiers_apply_records_moves_once(project, capsys):
    files = {
        "tier.csv": "tier_id,name,label,level,min_spend_12m\nT0,classic,普通会员,0,0\n"
        "T1,gold,金卡,1,1000\n",
        "customer.csv": "customer_id,name,is_member,created_at\nC1,张三,true,2023-01-01\n"
        "C2,李四,true,2023-01-01\n",
        "orders.csv": "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O1,C1,2024-03-01,offline,1500,1500\n",
    }
    assert main(["init"]) == 0
    for name, body in files.items():
        (project / name).write_text(body, encoding="utf-8")
        assert main(["import", name.removesuffix(".csv"), name]) == 0
    capsys.readouterr()
    assert main(["tiers", "apply", "--as-of", "2024-07-01", "--review-days", "365"]) == 0
    out = capsys.readouterr().out
    assert "Tier changes recorded at 2024-07-01: 2" in out
    assert "金卡" in out and "普通会员" in out
    assert main(["tiers", "apply", "--as-of", "2024-07-01"]) == 0
    assert "Tier changes recorded at 2024-07-01: 0" in capsys.readouterr().out
