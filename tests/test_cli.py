import pytest
from project_settings import cli_project, import_files

from crm_ml.cli import main


@pytest.fixture
def project(tmp_path, monkeypatch):
    return cli_project(tmp_path, monkeypatch)


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


def _with_demo_notebooks(project):
    from crm_ml.pipeline import DEMO_REPORTS

    (project / "notebooks").mkdir()
    for report in DEMO_REPORTS:
        (project / "notebooks" / f"{report}.ipynb").write_text("{}")


def test_demo_refuses_to_wipe_a_store_outside_the_data_folder(project, monkeypatch, capsys):
    _with_demo_notebooks(project)
    monkeypatch.setenv("CRM_ML_DATABASE_URL", f"sqlite:///{project / 'elsewhere.db'}")
    assert main(["demo"]) == 2
    assert "will not wipe" in capsys.readouterr().err


def test_a_demo_that_could_not_finish_is_refused_before_any_work(project, capsys):
    # Without the report notebooks (CRM_ML_HOME away from the project), step 7 would fail.
    assert main(["demo"]) == 2
    assert "No report notebook" in capsys.readouterr().err
    _with_demo_notebooks(project)
    assert main(["demo", "--customers", "150"]) == 2
    assert "The demo needs at least 1,000 customers, got 150" in capsys.readouterr().err
    assert not (project / "data").exists()


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
    import_files(project, files)
    capsys.readouterr()
    assert main(["tiers", "apply", "--as-of", "2024-07-01", "--review-days", "365"]) == 0
    out = capsys.readouterr().out
    assert "Tier changes recorded at 2024-07-01: 2" in out
    assert "金卡" in out and "普通会员" in out
    assert main(["tiers", "apply", "--as-of", "2024-07-01"]) == 0
    assert "Tier changes recorded at 2024-07-01: 0" in capsys.readouterr().out


@pytest.fixture
def small_store(project, capsys):
    """A store whose data runs from 2024-01-01 to 2024-03-01, Shanghai time (a day earlier UTC)."""
    files = {
        "customer.csv": "customer_id,name,created_at\nC1,张三,2024-01-01\nC2,李四,2024-02-01\n",
        "orders.csv": "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
        "O1,C1,2024-02-01,offline,100,100\nO2,C2,2024-03-01,offline,50,50\n",
    }
    assert main(["init"]) == 0
    import_files(project, files)
    capsys.readouterr()
    return project


@pytest.mark.parametrize(
    ("argv", "commands"),
    [
        ([], "choose a command: init, upgrade, info, demo, import"),
        (["tags"], "choose a command: apply, list"),
        (["segment"], "choose a command: create, list, show, history, export"),
    ],
)
def test_a_group_without_its_command_lists_the_commands(project, capsys, argv, commands):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert commands in err
    assert "required" not in err and "_command" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["segment", "export", "--help"], "marketing (default)"),
        (["segment", "export", "--help"], "the list's date"),
        (["train", "--help"], "between snapshots (default 90)"),
        (["score", "--help"], "score customers as they were on this date"),
        (["tags", "--help"], "manual tag for the customers listed in a file with `tags add`"),
    ],
)
def test_help_states_defaults_and_what_exists(project, capsys, argv, expected):
    with pytest.raises(SystemExit):
        main(argv)
    assert expected in " ".join(capsys.readouterr().out.split())


def test_features_build_refuses_an_out_file_that_is_not_parquet(small_store, capsys):
    assert main(["features", "build", "--as-of", "2024-03-02", "--out", "f.csv"]) == 2
    assert "expected a file name ending in .parquet, e.g. f.parquet" in capsys.readouterr().err
    assert not (small_store / "f.csv").exists()


def test_import_suggests_the_nearest_table_and_lists_cdnow(small_store, capsys):
    assert main(["import", "order", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'orders'?" in err
    assert "customer_merge, customer_change, erased_customer, cdnow" in err


@pytest.mark.parametrize("argv", [["info"], ["import", "orders", "orders.csv"]])
def test_a_mistyped_store_url_creates_nothing(project, monkeypatch, capsys, argv):
    (project / "orders.csv").write_text("order_id\n", encoding="utf-8")
    typo = project / "dta" / "crm.duckdb"
    monkeypatch.setenv("CRM_ML_DATABASE_URL", f"duckdb:///{typo}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"No store exists at {typo}" in err and "crm-ml init" in err
    assert not typo.parent.exists()


@pytest.mark.parametrize("command", [["score"], ["tags", "apply"]])
def test_as_of_outside_the_data_is_refused(small_store, capsys, command):
    assert main([*command, "--as-of", "2030-01-01"]) == 2
    err = capsys.readouterr().err
    assert "after the last recorded order (2024-02-29 16:00 UTC)" in err
    assert "a date by 2024-05-29" in err and "e.g. 2024-03-01" in err
    assert main([*command, "--as-of", "2023-06-01"]) == 2
    err = capsys.readouterr().err
    assert "its first customer or order is from 2023-12-31 16:00 UTC" in err
    assert "Use a date from 2024-01-01 on" in err


def test_train_checks_the_category_before_building_anything(project, capsys):
    assert main(["train", "propensity", "--category", "shoes", "--no-register"]) == 2
    assert "Unknown category 'shoes'; expected one of maternity_baby, beauty, food" in (
        capsys.readouterr().err
    )
    assert main(["train", "churn", "--category", "food"]) == 2
    assert "--category applies to `crm-ml train propensity` only" in capsys.readouterr().err


def test_train_refuses_too_few_snapshots_before_building_anything(project, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "churn", "--snapshots", "2"])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--snapshots: 2 is too few" in err and "use 3 or more (default 5)" in err


def test_the_demo_keeps_a_server_stores_truth_under_data(project):
    from crm_ml.config import Settings
    from crm_ml.pipeline import _truth_path
    from crm_ml.store import Store

    settings = Settings.from_env(environ={"CRM_ML_HOME": str(project)})
    server = Store("postgresql+psycopg://crm@db.example/crm")  # not connected
    assert _truth_path(settings, server) == project / "data" / "demo.truth.parquet"
    assert _truth_path(settings, Store(f"duckdb:///{project / 'crm.duckdb'}", create=True)) is None
