"""The segment explorer, driven from Python: controls -> rule -> size, save, export."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import ipywidgets as w
import pandas as pd
import pytest

from crm_ml.errors import ConfigError, RuleError, ValidationError
from crm_ml.segments import (
    Segment,
    evaluate_segment,
    load_segment,
    save_segment,
    segment_history,
    snapshot_segment,
)
from crm_ml.store import Store
from crm_ml.store.schema import Base
from crm_ml.widgets import SegmentExplorer
from crm_ml.widgets.explorer import STATUS_COLOURS

AS_OF = datetime(2024, 7, 1)
BEFORE = datetime(2024, 3, 1)
SECRET = "explorer-test-secret-0123456789"
IDS = ["c1", "c2", "c3", "c4", "c5", "c6"]
ODD_CHANNEL = "x') or tag('vip"


def _insert(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    with store.begin() as conn:
        conn.execute(Base.metadata.tables[table].insert(), rows)


@pytest.fixture
def store(duckdb_store: Store) -> Store:
    """Six customers; c1-c3 are VIPs, c3 also lapsed; c1, c2, c4 consented to SMS marketing."""
    names = ["张三", "李四", "王五", "赵六", "钱七", "孙八"]
    _insert(
        duckdb_store,
        "customer",
        [{"customer_id": c, "name": n, "created_at": BEFORE, "status": "active", "is_member": True}
         for c, n in zip(IDS, names, strict=True)],
    )  # fmt: skip
    _insert(
        duckdb_store,
        "customer_identity",
        [{"customer_id": c, "kind": "phone", "value": f"+861381234567{i}", "verified": True,
          "created_at": BEFORE} for i, c in enumerate(IDS)],
    )  # fmt: skip
    _insert(
        duckdb_store,
        "consent",
        [{"customer_id": c, "channel": "sms", "purpose": "marketing", "updated_at": BEFORE,
          "status": "granted"} for c in ("c1", "c2", "c4")],
    )  # fmt: skip
    _insert(
        duckdb_store,
        "tag_definition",
        [{"tag_id": n, "name": n, "label": label, "kind": "manual", "version": 1,
          "created_at": BEFORE} for n, label in [("vip", "贵宾"), ("lapsed", "流失")]],
    )  # fmt: skip
    members = [("vip", "c1"), ("vip", "c2"), ("vip", "c3"), ("lapsed", "c3"), ("lapsed", "c5")]
    _insert(
        duckdb_store,
        "customer_tag",
        [{"customer_id": c, "tag_id": t, "valid_from": BEFORE, "source": "manual"}
         for t, c in members],
    )  # fmt: skip
    _insert(
        duckdb_store,
        "tier",
        [{"tier_id": f"t{n}", "name": name, "label": label, "level": n,
          "min_spend_12m": 100.0 * n}
         for n, name, label in [(1, "silver", "银卡会员"), (2, "gold", "金卡会员")]],
    )  # fmt: skip
    return duckdb_store


@pytest.fixture
def features() -> pd.DataFrame:
    index = pd.Index(IDS, name="customer_id", dtype="str")
    return pd.DataFrame(
        {
            "recency_days": [10.0, 95.0, 200.0, 40.0, None, 120.0],
            "revenue_365d": [5000.0, 800.0, 3000.0, 50.0, 0.0, 1200.0],
            "tier_level": [2.0, 1.0, 2.0, 1.0, None, 1.0],  # c5 has no tier
            "acquisition_channel": ["app", "store", "app", ODD_CHANNEL, "web", "store"],
            "p_churn": [0.1, 0.7, 0.9, 0.4, 0.8, 0.65],
        },
        index=index,
    )


@pytest.fixture
def explorer(store: Store, features: pd.DataFrame, tmp_path) -> SegmentExplorer:
    return SegmentExplorer(
        store, features, AS_OF, secret=SECRET, actor="tester", out_dir=tmp_path / "lists"
    )


def test_no_condition_means_everyone(explorer):
    assert explorer.rule == ""
    assert explorer.size == 6
    assert isinstance(explorer.widget, w.VBox)
    assert explorer.summary().loc["2024-07-01", "rule"] == "(everyone)"


def test_tags_update_rule_and_size_live(explorer):
    explorer.tags.value = ("vip",)
    assert explorer.rule == "tag('vip')"
    assert list(explorer.members) == ["c1", "c2", "c3"]
    explorer.exclude_tags.value = ("lapsed",)
    assert explorer.rule == "tag('vip') and not tag('lapsed')"
    assert explorer.size == 2
    assert "2 customers" in explorer.size_view.value


def test_an_erased_customer_is_out_of_the_base_as_out_of_the_snapshot(store, features):
    from crm_ml.erasure import erase_customer

    erase_customer(store, "c2", actor="合规官", reason="ticket DPO-17")
    explorer = SegmentExplorer(store, features, AS_OF, actor="tester")
    explorer.add_threshold("recency_days", ">", 90)  # c2, c3 and c6 before the erasure
    assert (list(explorer.members), explorer.erased) == (["c3", "c6"], 1)
    assert "2 customers (40.0% of 5; 1 erased on request left out)" in explorer.size_view.value
    explorer.save("lapsing")
    assert list(snapshot_segment(store, "lapsing", features, AS_OF)) == list(explorer.members)


def test_threshold_rows_are_compiled_and_evaluated(explorer):
    row = explorer.add_threshold("recency_days", ">", 90)
    assert explorer.rule == "recency_days > 90"
    assert list(explorer.members) == ["c2", "c3", "c6"]  # a missing recency never matches
    row.value.value = 150.5
    assert explorer.rule == "recency_days > 150.5"
    assert list(explorer.members) == ["c3"]
    row.op.value = "<="
    assert list(explorer.members) == ["c1", "c2", "c4", "c6"]
    row.remove.click()
    assert explorer.rule == "" and explorer.size == 6


def test_score_range_tiers_and_channels(explorer):
    explorer.scores["p_churn"].value = (0.6, 1.0)
    assert explorer.rule == "between(p_churn, 0.6, 1)"
    assert list(explorer.members) == ["c2", "c3", "c5", "c6"]
    explorer.tiers.value = (1,)
    explorer.channels.value = ("store",)
    assert explorer.rule.endswith("tier_level in [1] and acquisition_channel in ['store']")
    assert list(explorer.members) == ["c2", "c6"]
    labels = [label for label, _ in explorer.tiers.options]
    assert labels == ["银卡会员 / silver (level 1)", "金卡会员 / gold (level 2)", "(no tier)"]
    assert dict(explorer.channels.options)["门店 (store)"] == "store"


def test_tiers_and_channels_can_be_given_by_name(explorer):
    explorer.apply(tiers=["金卡会员", "silver"], channels=["门店", "app"])
    assert explorer.rule == "tier_level in [2, 1] and acquisition_channel in ['store', 'app']"
    assert list(explorer.members) == ["c1", "c2", "c3", "c6"]


def test_an_english_explorer_names_tiers_and_channels_by_code(store, features, tmp_path):
    english = SegmentExplorer(store, features, AS_OF, language="en")
    assert [label for label, _ in english.tiers.options][:2] == [
        "silver (level 1)",
        "gold (level 2)",
    ]
    assert dict(english.channels.options)["store"] == "store"


def test_customers_without_a_tier_can_be_chosen(explorer):
    no_tier = dict(explorer.tiers.options)["(no tier)"]
    explorer.tiers.value = (no_tier,)
    assert explorer.rule == "missing(tier_level)"
    assert list(explorer.members) == ["c5"]
    explorer.tiers.value = (2, no_tier)
    assert explorer.rule == "(tier_level in [2] or missing(tier_level))"
    assert list(explorer.members) == ["c1", "c3", "c5"]


def test_a_channel_value_stays_a_quoted_literal(explorer):
    explorer.channels.value = (ODD_CHANNEL,)
    # The value is quoted into the rule, then refused by the compiler as an unknown channel.
    assert explorer.rule == f"acquisition_channel in {[ODD_CHANNEL]!r}"
    assert explorer.size == 0
    assert "acquisition_channel is never" in explorer.error
    assert "acquisition_channel is never" in explorer.status.value


def test_consented_only_adds_a_consent_condition(explorer):
    explorer.apply(tags=["vip"], consented_only=True)
    assert explorer.rule == "tag('vip') and consent('sms', 'marketing')"
    assert list(explorer.members) == ["c1", "c2"]
    explorer.consent_channel.value = "email"
    assert explorer.size == 0
    assert bytes(explorer.portrait_view.value) == b""


def test_apply_replaces_the_selection(explorer):
    explorer.apply(thresholds=["recency_days > 90"], tiers=[2])
    explorer.apply(tags=["vip"], thresholds=[("revenue_365d", ">=", 1000)])
    assert explorer.rule == "tag('vip') and revenue_365d >= 1000"
    assert list(explorer.members) == ["c1", "c3"]
    assert len(explorer.thresholds_box.children) == 1


@pytest.mark.parametrize("text", ["recency_days>90", "recency_days >90", " recency_days> 90 "])
def test_a_threshold_reads_with_or_without_spaces(explorer, text):
    explorer.apply(thresholds=[text])
    assert explorer.rule == "recency_days > 90"


@pytest.mark.parametrize(
    ("item", "message"),
    [("recency_days >> 3", "operator"), (("recency_days", ">", "soon"), "not a number")],
)
def test_bad_thresholds_are_refused(explorer, item, message):
    with pytest.raises(ValidationError, match=message):
        explorer.apply(thresholds=[item])


def test_unknown_feature_is_refused(explorer):
    with pytest.raises(ValidationError, match="'recency' is not a numeric feature"):
        explorer.add_threshold("recency", ">", 1)


def test_sample_rows_and_portrait_are_masked(explorer):
    explorer.apply(tags=["vip"])
    sample = explorer.sample()
    assert list(sample["name"]) == ["张*", "李*", "王*"]
    assert list(sample["phone"]) == ["138****5670", "138****5671", "138****5672"]
    assert "13812345670" not in explorer.sample_view.value
    assert bytes(explorer.portrait_view.value).startswith(b"\x89PNG")
    assert explorer.figure().axes


def test_saved_rule_is_what_the_batch_job_evaluates(explorer, store, features):
    explorer.apply(tags=["vip"], thresholds=["recency_days > 90"])
    saved = explorer.save("vip_lapsing", label="贵宾流失")
    stored = load_segment(store, "vip_lapsing")
    assert stored.rule == "tag('vip') and recency_days > 90" == saved.rule
    assert stored.created_by == "tester" and stored.label == "贵宾流失"
    batch = evaluate_segment(store, "vip_lapsing", features, AS_OF)
    assert list(batch) == list(explorer.members) == ["c2", "c3"]


def test_save_without_a_condition_writes_nothing(explorer, store):
    with pytest.raises(RuleError, match="No condition"):
        explorer.save("everyone")
    explorer.name.value = "everyone"
    explorer.save_button.click()
    assert "No condition" in explorer.status.value


def test_export_writes_consented_masked_lists(explorer, tmp_path):
    explorer.apply(tags=["vip"])
    explorer.name.value = "vips"
    explorer.save_button.click()
    assert "Saved segment vips v1" in explorer.status.value
    explorer.export_button.click()
    assert "2 kept" in explorer.status.value
    # Which consent the list was filtered on, and where to find it, without reading the log.
    where = f"Channel sms, purpose marketing; written to {tmp_path / 'lists'}."
    assert where in html.unescape(explorer.status.value)
    files = sorted((tmp_path / "lists").glob("vips_20240701_sms_*.csv"))
    text = "".join(f.read_text(encoding="utf-8-sig") for f in files)
    assert "138****5670" in text and "13812345670" not in text


def test_export_needs_the_current_rule_saved(explorer):
    explorer.apply(tags=["vip"])
    with pytest.raises(ValidationError, match="Save the segment before exporting"):
        explorer.export()
    explorer.save("vips")
    explorer.tags.value = ("lapsed",)
    with pytest.raises(ValidationError, match="controls changed"):
        explorer.export()


def test_an_unmasked_export_needs_a_reason_before_anything_is_written(explorer, store, tmp_path):
    explorer.apply(tags=["vip"]).save("vips")
    with pytest.raises(ValidationError, match="needs a reason"):
        explorer.export(unmask=True)
    with store.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM segment_snapshot").scalar() == 0
    assert not (tmp_path / "lists").exists()

    explorer.export(unmask=True, unmask_reason="call-back approved, ticket 12")
    with store.connect() as conn:
        reasons = conn.exec_driver_sql("SELECT DISTINCT reason FROM export_log").scalars().all()
    assert reasons == ["call-back approved, ticket 12"]


def test_export_without_a_secret_names_the_variable(store, features, tmp_path):
    explorer = SegmentExplorer(store, features, AS_OF, out_dir=tmp_path)
    explorer.apply(tags=["vip"]).save("vips")
    with pytest.raises(ConfigError, match="CRM_ML_EXPORT_SECRET"):
        explorer.export()


def _view(explorer: SegmentExplorer) -> tuple[Any, ...]:
    return (
        explorer.rule,
        list(explorer.members),
        explorer.size_view.value,
        bytes(explorer.portrait_view.value),
        explorer.sample_view.value,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tags": ["vpi"]}, "Unknown tag 'vpi'. Did you mean 'vip'? Choose among: lapsed, vip."),
        ({"exclude_tags": "lapsd"}, "Unknown tag 'lapsd'. Did you mean 'lapsed'?"),
        (
            {"tiers": [1, "glod"]},
            "Unknown tier 'glod': choose a tier by its level or its name. Did you mean "
            "2 (金卡会员 / gold)? Choose among: 1 = 银卡会员 / silver, 2 = 金卡会员 / gold, "
            "-1 = (no tier).",
        ),
        ({"p_churn": (0.9, 0.2)}, "got (0.9, 0.2), whose lower end is above its upper."),
        ({"p_purchase": (0.2, 1.5)}, "p_purchase is a range (low, high) with 0 ≤ low ≤ high ≤ 1"),
        ({"channels": ["shop"]}, "Unknown acquisition channel 'shop'. Choose among: app,"),
        ({"thresholds": ["recency_dayz > 90"]}, "Did you mean 'recency_days' or 'revenue_365d'?"),
    ],
)
def test_apply_checks_every_value_before_setting_any(explorer, values, message):
    explorer.apply(tags=["vip"], thresholds=["recency_days > 90"])
    before = _view(explorer)
    with pytest.raises(ValidationError) as raised:
        explorer.apply(**{"tags": ["lapsed"], "tiers": [1], **values})
    assert message in str(raised.value)
    assert _view(explorer) == before  # no control was set, the results still match them
    assert message in html.unescape(explorer.status.value)
    explorer.apply(tags=["lapsed"])  # the next good selection clears the message
    assert explorer.status.value == "" and list(explorer.members) == ["c3", "c5"]


def test_saving_over_another_segment_takes_a_second_click(explorer, store, features):
    save_segment(store, Segment("nightly", "tag('lapsed')", "夜间名单"), actor="cron")
    snapshot_segment(store, "nightly", features, AS_OF)
    explorer.apply(tags=["vip"])
    explorer.name.value = "nightly"  # the label box is left empty
    explorer.save_button.click()
    assert html.unescape(explorer.status.value) == (
        f"<span style='color:{STATUS_COLOURS['warn']}'>Segment nightly already exists (v1, "
        "created by cron; snapshots at 1 date, 2024-07-01) with the rule tag('lapsed'). "
        "Click Save again to replace it.</span>"
    )
    assert load_segment(store, "nightly").rule == "tag('lapsed')"  # nothing written yet
    explorer.save_button.click()
    stored = load_segment(store, "nightly")
    assert (stored.rule, stored.version, stored.label) == ("tag('vip')", 2, "夜间名单")
    assert "Saved segment nightly v2. It replaced v1: tag('lapsed')" in html.unescape(
        explorer.status.value
    )
    last = segment_history(store, "nightly").iloc[-1]
    assert (last.changed_by, last.change, last.version) == ("tester", "rule", 2)


def test_a_changed_selection_between_clicks_is_asked_about_again(explorer, store):
    save_segment(store, Segment("nightly", "tag('lapsed')"), actor="cron")
    explorer.apply(tags=["vip"])
    explorer.name.value = "nightly"
    explorer.save_button.click()
    explorer.apply(tags=["vip"], exclude_tags=["lapsed"])
    explorer.save_button.click()
    assert "Click Save again to replace it." in explorer.status.value
    assert load_segment(store, "nightly").version == 1


def test_saving_over_another_segment_from_python_needs_replace(explorer, store):
    save_segment(store, Segment("nightly", "tag('lapsed')", "夜间名单"), actor="cron")
    explorer.apply(tags=["vip"])
    with pytest.raises(ValidationError, match=r"already exists .* Pass replace=True"):
        explorer.save("nightly")
    assert explorer.save("nightly", replace=True).label == "夜间名单"
    explorer.apply(tags=["lapsed"])
    assert explorer.save("nightly").version == 3  # its own segment: no confirmation again


def test_an_export_with_nobody_to_contact_is_not_shown_as_success(explorer):
    explorer.apply(tags=["lapsed"])  # c3 and c5, neither consented
    explorer.name.value = "lapsed_list"
    explorer.save_button.click()
    explorer.export_button.click()
    status = html.unescape(explorer.status.value)
    assert status.startswith(f"<span style='color:{STATUS_COLOURS['warn']}'>")
    assert "0 customers to contact, all 2 members excluded (0 withdrawn, 2 no consent)" in status


def test_the_sample_reads_p_churn_from_the_store(store, features, tmp_path):
    rows = [
        {"model_name": "crm-churn", "as_of": BEFORE, "customer_id": c, "model_version": "1",
         "probability": p, "band": "high", "reasons": "[]", "scored_at": BEFORE}
        for c, p in [("c1", 0.25), ("c2", 0.75)]
    ]  # fmt: skip
    _insert(store, "score", rows)
    explorer = SegmentExplorer(store, features.drop(columns="p_churn"), AS_OF)
    explorer.apply(tags=["vip"])
    assert explorer.sample()["p_churn"].tolist()[:2] == [0.25, 0.75]


def test_the_figure_of_an_empty_selection_says_it_is_empty(explorer):
    explorer.apply(thresholds=["recency_days > 100000"])
    axes = explorer.figure().axes[0]
    assert not axes.patches and "没有客户" in axes.texts[0].get_text()
    assert axes.get_title() == "0 / 6 位客户"


def test_a_rule_on_scores_the_store_lacks_says_so_under_the_widget(store, features):
    explorer = SegmentExplorer(store, features.drop(columns="p_churn"), AS_OF)
    explorer.scores["p_churn"].value = (0.6, 1.0)

    assert explorer.size == 0
    status = html.unescape(explorer.status.value)
    assert status.startswith(f"<span style='color:{STATUS_COLOURS['warn']}'>")
    assert "No crm-churn scores up to 2024-07-01" in status
    explorer.scores["p_churn"].value = (0.0, 1.0)  # no score condition: nothing to warn about
    explorer.apply(tags=["vip"])
    assert explorer.status.value == ""
