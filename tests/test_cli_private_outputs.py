"""``crm-ml export parquet`` and ``features build --out`` write personal data: owner-only, warned.

Both files hold data about each customer (the export unmasked names, phones and
consent; the feature file age band, gender, maternity affinity, consent flags),
so they are written with mode 0600 and one warning on stderr says what they hold.
"""

import json
import os

import pytest
from project_settings import cli_project, import_files, run_logged

from crm_ml.cli import main
from crm_ml.store.export import MANIFEST


@pytest.fixture
def small_store(tmp_path, monkeypatch, capsys):
    """Two customers with an order each, imported with the CLI; files made readable by others."""
    previous = os.umask(0o022)
    root = cli_project(tmp_path, monkeypatch)
    assert main(["init"]) == 0
    import_files(
        root,
        {
            "customer.csv": "customer_id,name,created_at\nC1,张三,2024-01-01\nC2,李四,2024-02-01\n",
            "orders.csv": "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\n"
            "O1,C1,2024-02-01,offline,100,100\nO2,C2,2024-03-01,offline,50,50\n",
        },
    )
    capsys.readouterr()
    yield root
    os.umask(previous)


def _mode(path):
    return os.stat(path).st_mode & 0o777


def test_export_parquet_is_owner_only_audited_and_warned(small_store, capsys, monkeypatch):
    monkeypatch.setenv("LOGNAME", "li.wei")
    out = small_store / "pq"
    assert run_logged(["export", "parquet", str(out), "--reason", "Spark backfill"]) == 0
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1
    assert f"exported the store to {out}: it holds unmasked personal data of 2 customers" in err
    assert "readable by the owner only" in err
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert (manifest["actor"], manifest["reason"]) == ("li.wei", "Spark backfill")
    assert _mode(out / "customer" / "part-0.parquet") == 0o600
    assert _mode(out / "customer") == 0o700


def test_export_parquet_runs_without_a_reason(small_store, capsys):
    assert main(["export", "parquet", "pq"]) == 0  # as the README's Spark section runs it
    assert json.loads((small_store / "pq" / MANIFEST).read_text(encoding="utf-8"))["reason"] is None


@pytest.mark.parametrize("existing", [False, True])
def test_features_build_writes_an_owner_only_file_and_warns(small_store, capsys, existing):
    out = small_store / "features.parquet"
    if existing:  # a file of an earlier build, readable by others: its mode is not kept
        out.write_bytes(b"old")
        os.chmod(out, 0o644)
    assert run_logged(["features", "build", "--as-of", "2024-03-02", "--out", str(out)]) == 0
    assert _mode(out) == 0o600
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1
    assert f"{out} holds per-customer features keyed by customer_id, sensitive ones" in err
    assert "readable by its owner only" in err
    assert os.umask(0o022) == 0o022  # the command put the umask back
