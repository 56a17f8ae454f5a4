"""The :class:`SegmentExplorer` class: controls wired to a rule, its members, saving and export.

This module holds the explorer itself: it builds the controls (from
:mod:`crm_ml.widgets.controls`) and lays them out, writes the rule text they
describe, compiles and evaluates it over the features frame on every change,
redraws the results (from :mod:`crm_ml.widgets.preview`), and saves the rule
as a segment and exports its list from the buttons or from Python.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
from matplotlib.figure import Figure

from crm_ml.errors import CrmMlError, NotFoundError, RuleError, ValidationError
from crm_ml.rules import Rule, as_timestamp, build_context, compile_rule
from crm_ml.segments import (
    ExportSummary,
    Segment,
    export_list,
    load_segment,
    plot_portrait,
    portrait_names,
    save_segment,
    segment_portrait,
    snapshot_segment,
    tag_flags,
)
from crm_ml.segments.definitions import segment_vocabulary
from crm_ml.segments.export import check_unmask_reason
from crm_ml.segments.members import segment_usage
from crm_ml.store.connection import Store
from crm_ml.store.erased import drop_erased, erased_note
from crm_ml.store.schema import CONSENT_CHANNELS, CONSENT_PURPOSES
from crm_ml.tags import tag_definitions_frame
from crm_ml.widgets.controls import (
    _FULL,
    Offered,
    ThresholdRow,
    _number,
    channel_options,
    check_feature,
    check_selection,
    numeric_features,
    score_sliders,
    section,
    tier_clause,
    tier_options,
)
from crm_ml.widgets.preview import figure_png, masked_sample, sample_scores, selection_summary

log = logging.getLogger(__name__)

#: Colours of the status line: done, needs attention (a confirmation, nobody exported), failed.
STATUS_COLOURS = {"ok": "#1e8449", "warn": "#b9770e", "error": "#c0392b"}


class SegmentExplorer:
    """Explore an audience with widgets over a features frame at ``as_of``.

    Parameters
    ----------
    store : Store
        Read for tags, scores, consent, tiers and contact details; written by
        :meth:`save` and :meth:`export`.
    features : pandas.DataFrame
        Indexed by ``customer_id``: the features as of ``as_of``. The base is
        its customers but those erased on request, whom a saved snapshot
        leaves out too.
    as_of : datetime-like
        The date tags, scores and consent are read at.
    secret : str, optional
        Key of the pseudonymous ids in exported lists; read it from
        ``CRM_ML_EXPORT_SECRET`` in the notebook. Needed only to export.
    actor : str
        Recorded as the creator of new segments, in the history of a stored
        segment it changes, and in the export log.
    out_dir : str or Path, optional
        Where the export button writes lists.
    sample_size : int
        Masked sample rows shown.
    language : str
        ``zh`` or ``en`` (``settings.language``): the headers of exported list
        files, the portrait's names and the tier and channel names on offer.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The explorer to display.
    tags, exclude_tags, tiers, channels : ipywidgets.SelectMultiple
        Tags every member has / none has; tier levels; acquisition channels.
    scores : dict of str to ipywidgets.FloatRangeSlider
        ``p_churn`` and ``p_purchase`` ranges (the full range means no condition).
    thresholds : list of ThresholdRow
        Feature conditions (add with :meth:`add_threshold`).
    consented_only, consent_channel, consent_purpose
        Keep only customers who consented to the channel and purpose (also the
        channel and purpose of exports).
    members : pandas.Index
        Customers matching the controls, after the last refresh.
    error : str
        Why the last refresh matched no one because the rule was rejected, or ``""``.
    notice : str
        What the last refresh warned about (e.g. no scores at ``as_of``, so rules
        reading them match no one), or ``""``; shown in the status line.
    erased : int
        Customers of ``features`` erased on request, left out of the base.
    """

    def __init__(
        self,
        store: Store,
        features: pd.DataFrame,
        as_of: Any,
        *,
        secret: str | None = None,
        actor: str = "segment-explorer",
        out_dir: str | Path | None = None,
        sample_size: int = 10,
        language: str = "zh",
    ) -> None:
        features, erased = drop_erased(store, features)
        if len(erased):
            log.info("%s", erased_note(len(erased), "the explorer's base"))
        self.store, self.features, self.actor = store, features, actor
        self.erased = len(erased)
        self.language = language
        self.as_of = as_timestamp(as_of)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.sample_size = sample_size
        self._secret = secret
        self.vocabulary = segment_vocabulary(store, features)
        self.saved: Segment | None = None
        self.members: pd.Index = pd.Index([], dtype="str", name="customer_id")
        self.error = self.notice = ""
        self._holding = False
        self._confirming: tuple[str, str, str | None] | None = None  # a save awaiting a 2nd click
        self._tag_labels = self._read_tags()
        self._names = portrait_names(store, language)
        self._flags = tag_flags(store, list(self._tag_labels), self.as_of, features.index)
        self._scores = sample_scores(store, features, self.as_of)
        self._build_controls()
        self._build_outputs()
        self.widget = self._layout()
        self.refresh()

    # ------------------------------------------------------------------ controls

    def _read_tags(self) -> dict[str, str]:
        frame = tag_definitions_frame(self.store)
        return {str(n): f"{label} ({n})" for n, label in frame["label"].items()}

    def _build_controls(self) -> None:
        tag_options = [(label, name) for name, label in self._tag_labels.items()]
        self.tags = w.SelectMultiple(options=tag_options, description="Has all", rows=6)
        self.exclude_tags = w.SelectMultiple(options=tag_options, description="Has none", rows=6)
        self.scores = score_sliders()
        self.thresholds: list[ThresholdRow] = []
        self.thresholds_box = w.VBox([])
        self.add_threshold_button = w.Button(description="Add condition", icon="plus")
        self.add_threshold_button.on_click(lambda _: self.add_threshold())
        self.tiers = w.SelectMultiple(
            options=tier_options(self.store, self.features, self.language),
            description="Tiers",
            rows=5,
        )
        self.channels = w.SelectMultiple(
            options=channel_options(self.features, self.language), description="Channels", rows=5
        )
        self.consented_only = w.Checkbox(value=False, description="Consented only")
        self.consent_channel = w.Dropdown(options=list(CONSENT_CHANNELS), description="Channel")
        self.consent_purpose = w.Dropdown(options=list(CONSENT_PURPOSES), description="Purpose")
        for control in self._rule_controls():
            control.observe(self._on_change, names="value")

    def _rule_controls(self) -> list[w.Widget]:
        return [
            self.tags, self.exclude_tags, *self.scores.values(), self.tiers, self.channels,
            self.consented_only, self.consent_channel, self.consent_purpose,
        ]  # fmt: skip

    def _build_outputs(self) -> None:
        self.name = w.Text(description="Name", placeholder="e.g. vip_lapsing")
        self.label = w.Text(description="Label", placeholder="e.g. 高价值流失预警")
        self.save_button = w.Button(description="Save segment", icon="save")
        self.export_button = w.Button(description="Export list", icon="download")
        self.save_button.on_click(lambda _: self._guarded(self._click_save))
        self.export_button.on_click(lambda _: self._guarded(self._click_export))
        self.size_view = w.HTML()
        self.rule_view = w.HTML()
        self.portrait_view = w.Image(format="png")
        self.sample_view = w.HTML()
        self.status = w.HTML()

    def _layout(self) -> w.VBox:
        controls = w.VBox(
            [
                section("Tags", self.tags, self.exclude_tags),
                section("Scores", *self.scores.values()),
                section("Feature thresholds", self.thresholds_box, self.add_threshold_button),
                section("Tiers and acquisition channels", self.tiers, self.channels),
                section("Consent", self.consented_only, self.consent_channel, self.consent_purpose),
                section("Save and export", self.name, self.label,
                        w.HBox([self.save_button, self.export_button])),
            ],
            layout=w.Layout(width="45%"),
        )  # fmt: skip
        results = w.VBox(
            [self.size_view, self.rule_view, self.portrait_view, self.sample_view, self.status],
            layout=w.Layout(width="55%"),
        )
        title = w.HTML(f"<h3>Segment explorer — as of {self.as_of:%Y-%m-%d}</h3>")
        return w.VBox([title, w.HBox([controls, results])])

    def add_threshold(
        self, feature: str | None = None, op: str = ">", value: float = 0.0
    ) -> ThresholdRow:
        """Add a ``feature <op> value`` condition row and return it."""
        names = numeric_features(self.vocabulary, self.features)
        chosen = check_feature(feature or (names[0] if names else ""), names)
        row = ThresholdRow(names, chosen, op, value)
        for control in (row.feature, row.op, row.value):
            control.observe(self._on_change, names="value")
        row.remove.on_click(lambda _: self.remove_threshold(row))
        self.thresholds.append(row)
        self.thresholds_box.children = [r.box for r in self.thresholds]
        self._on_change()
        return row

    def remove_threshold(self, row: ThresholdRow) -> None:
        """Remove a condition row."""
        self.thresholds.remove(row)
        self.thresholds_box.children = [r.box for r in self.thresholds]
        self._on_change()

    def apply(
        self,
        *,
        tags: Iterable[str] = (),
        exclude_tags: Iterable[str] = (),
        p_churn: tuple[float, float] = _FULL,
        p_purchase: tuple[float, float] = _FULL,
        thresholds: Iterable[str | Sequence[Any]] = (),
        tiers: Iterable[Any] = (),
        channels: Iterable[str] = (),
        consented_only: bool = False,
    ) -> SegmentExplorer:
        """Set every control at once (replacing the current selection) and refresh.

        ``thresholds`` are ``(feature, operator, number)`` tuples or text such as
        ``"recency_days > 90"``; ``tiers`` are tier levels or names (``2``, ``"gold"``,
        ``"金卡会员"``) and ``channels`` codes or Chinese names. Returns the explorer,
        so a notebook cell can show it.

        Raises
        ------
        ValidationError
            For an unknown tag, tier, channel or feature, a bad threshold, or a
            score range that is not ``0 <= low <= high <= 1``. Every value is
            checked before any control is set, so the controls and the results
            stay as they were; the status line shows the message too.
        """
        values = {
            "tags": tags, "exclude_tags": exclude_tags, "p_churn": p_churn,
            "p_purchase": p_purchase, "thresholds": thresholds, "tiers": tiers,
            "channels": channels, "consented_only": consented_only,
        }  # fmt: skip
        try:
            checked = check_selection(self._offered(), values)
        except ValidationError as exc:
            self._show(str(exc), "error")
            raise
        self._set_controls(checked)
        return self

    def _offered(self) -> Offered:
        return Offered(
            list(self._tag_labels),
            list(self.tiers.options),
            list(self.channels.options),
            numeric_features(self.vocabulary, self.features),
        )

    def _set_controls(self, checked: dict[str, Any]) -> None:
        self._holding = True  # one refresh at the end, not one per control
        try:
            self.tags.value = checked["tags"]
            self.exclude_tags.value = checked["exclude_tags"]
            self.scores["p_churn"].value = checked["p_churn"]
            self.scores["p_purchase"].value = checked["p_purchase"]
            for row in list(self.thresholds):
                self.remove_threshold(row)
            for feature, op, value in checked["thresholds"]:
                self.add_threshold(feature, op, value)
            self.tiers.value = checked["tiers"]
            self.channels.value = checked["channels"]
            self.consented_only.value = checked["consented_only"]
        finally:
            self._holding = False
            self.refresh()  # whatever happened, the results describe the controls

    # ------------------------------------------------------------------ the rule

    @property
    def rule(self) -> str:
        """The rule text the controls describe (``""`` when no control is set)."""
        clauses = [f"tag({name!r})" for name in self.tags.value]
        clauses += [f"not tag({name!r})" for name in self.exclude_tags.value]
        for name, slider in self.scores.items():
            low, high = slider.value
            if (low, high) != _FULL:
                clauses.append(f"between({name}, {_number(low)}, {_number(high)})")
        clauses += [row.clause() for row in self.thresholds]
        if self.tiers.value:
            clauses.append(tier_clause(self.tiers.value))
        if self.channels.value:
            clauses.append(f"acquisition_channel in {[str(c) for c in self.channels.value]!r}")
        if self.consented_only.value:
            channel, purpose = self.consent_channel.value, self.consent_purpose.value
            clauses.append(f"consent({channel!r}, {purpose!r})")
        return " and ".join(clauses)

    def compiled(self) -> Rule:
        """Compile :attr:`rule` against the segment vocabulary.

        Raises
        ------
        RuleError
            If no control is set or the rule is rejected.
        """
        text = self.rule
        if not text:
            raise RuleError("No condition is set: choose a tag, a score range, a threshold, …")
        return compile_rule(text, self.vocabulary)

    @property
    def size(self) -> int:
        """Number of customers matching the controls."""
        return len(self.members)

    def _evaluate(self) -> pd.Index:
        rule = self.compiled()
        overrides = {
            name: self.features.index[self._flags[name].to_numpy()]
            for name in rule.tags
            if name in self._flags
        }
        context = build_context(
            self.store, self.features, self.as_of, [rule], tag_overrides=overrides
        )
        matches = rule.evaluate(context)
        return pd.Index(sorted(matches.index[matches.to_numpy()]), dtype="str", name="customer_id")

    def refresh(self) -> None:
        """Re-evaluate the rule and redraw the size, rule, portrait and sample rows."""
        self.error = self.notice = ""
        if not self.rule:
            self.members = pd.Index(sorted(self.features.index), dtype="str", name="customer_id")
        else:
            try:
                # In JupyterLab a callback's log lines go to the log console, out of sight:
                # what the evaluation warns about belongs under the widget.
                with _warnings_caught() as warnings:
                    self.members = self._evaluate()
                self.notice = " ".join(warnings)
            except CrmMlError as exc:
                self.members = pd.Index([], dtype="str", name="customer_id")
                self.error = str(exc)
        self._draw()

    def _on_change(self, _change: Any = None) -> None:
        if not self._holding:
            self.refresh()

    # ------------------------------------------------------------------ results

    def summary(self) -> pd.DataFrame:
        """Return the selection as a one-row table: ``rule, customers, base, share``."""
        return selection_summary(self.features, self.members, self.rule, self.as_of)

    def portrait(self) -> pd.DataFrame:
        """Compare the selection with the base (:func:`~crm_ml.segments.segment_portrait`)."""
        return segment_portrait(self.features, self.members, tag_flags=self._flags)

    def figure(self) -> Figure:
        """Draw the portrait of the selection."""
        size, base = self.size, len(self.features)
        title = (
            f"{size:,} / {base:,} 位客户"
            if self.language == "zh"
            else f"{size:,} of {base:,} customers"
        )
        return plot_portrait(self.portrait(), title=title, lang=self.language, names=self._names)

    def sample(self) -> pd.DataFrame:
        """Up to ``sample_size`` members with masked name, phone and email, and key features."""
        return masked_sample(
            self.store, self.features, self.members, size=self.sample_size, scores=self._scores
        )

    def _draw(self) -> None:
        base = len(self.features)
        share = f"{self.size / base:.1%} of {base:,}" if base else ""
        erased = f"{self.erased:,} erased on request left out" if self.erased else ""
        share = "; ".join(filter(None, (share, erased)))
        share = f" ({share})" if share else ""
        self.size_view.value = f"<h4>{self.size:,} customers{share}</h4>"
        rule = self.rule or "(no condition: everyone)"
        self.rule_view.value = f"<code>{html.escape(rule)}</code>"
        if self.error:
            self._show(self.error, "error")
        else:
            self._show(self.notice, "warn")
        if not self.size:
            self.portrait_view.value, self.sample_view.value = b"", ""
            return
        self.portrait_view.value = figure_png(self.figure())
        self.sample_view.value = self.sample().to_html(index=False, float_format="{:,.2f}".format)

    # ------------------------------------------------------------------ save and export

    def save(
        self, name: str, *, label: str | None = None, kind: str = "dynamic", replace: bool = False
    ) -> Segment:
        """Save the current rule as a segment that the batch job evaluates.

        Without a ``label``, a stored segment keeps its label. A stored segment
        that this explorer did not save may feed other reports and nightly
        lists, so changing it needs ``replace=True``. Every change is kept in
        the segment's history, with the actor, the time and the rule it left:
        :func:`~crm_ml.segments.segment_history` (``crm-ml segment history NAME``).

        Raises
        ------
        RuleError
            If no control is set or the rule is rejected; nothing is written.
        ValidationError
            If the name is not allowed, or names another stored segment and
            ``replace`` is False; nothing is written.
        """
        segment, replaced = self._planned_save(name, label, kind)
        if replaced is not None and not replace:
            raise ValidationError(f"{self._exists(replaced)} Pass replace=True to replace it.")
        self.saved = save_segment(self.store, segment, actor=self.actor, vocabulary=self.vocabulary)
        log.info("Saved segment %s v%d: %s", self.saved.name, self.saved.version, self.saved.rule)
        return self.saved

    def _planned_save(
        self, name: str, label: str | None, kind: str
    ) -> tuple[Segment, Segment | None]:
        """Return the segment a save would store, and the stored one it would change, if any.

        Re-saving what this explorer saved last, or an unchanged definition, changes nothing
        that needs confirming.
        """
        self.compiled()
        try:
            previous: Segment | None = load_segment(self.store, name)
        except NotFoundError:
            previous = None
        label = label or (previous.label if previous else None)
        segment = Segment(name, self.rule, label, kind)  # type: ignore[arg-type]
        if previous is None or (self.saved is not None and self.saved.name == name):
            return segment, None
        same = (previous.rule, previous.kind, previous.label) == (segment.rule, kind, label)
        return segment, None if same else previous

    def _exists(self, previous: Segment) -> str:
        return (
            f"Segment {previous.name} already exists (v{previous.version}, created by "
            f"{previous.created_by or 'unknown'}; {segment_usage(self.store, previous.name)}) "
            f"with the rule {previous.rule}."
        )

    def export(
        self,
        *,
        channel: str | None = None,
        purpose: str | None = None,
        out_dir: str | Path | None = None,
        unmask: bool = False,
        unmask_reason: str | None = None,
    ) -> ExportSummary:
        """Export the saved segment's consented members (see :func:`~crm_ml.segments.export_list`).

        The segment is snapshotted at ``as_of`` first, so the list is exactly
        the saved rule's members. Channel and purpose default to the consent controls.
        An unmasked list needs ``unmask_reason``, recorded in the export log.

        Raises
        ------
        ValidationError
            If nothing was saved, or the controls changed since the last save.
        ConfigError
            Without a secret (set ``CRM_ML_EXPORT_SECRET`` and pass it as ``secret=``).
        """
        if self.saved is None or self.saved.rule != self.rule:
            raise ValidationError(
                "Save the segment before exporting: the list is the saved rule's members "
                "(the controls changed since the last save, or nothing was saved)."
            )
        folder = Path(out_dir) if out_dir is not None else self.out_dir
        if folder is None:
            raise ValidationError("No out_dir: pass out_dir= here or to SegmentExplorer.")
        check_unmask_reason(unmask, unmask_reason)  # before the snapshot is written
        snapshot_segment(self.store, self.saved, self.features, self.as_of)
        return export_list(
            self.store, self.saved.name, self.as_of,
            channel=channel or self.consent_channel.value,
            purpose=purpose or self.consent_purpose.value,
            out_dir=folder, secret=self._secret, actor=self.actor, unmask=unmask,
            unmask_reason=unmask_reason, features=self.features, language=self.language,
        )  # fmt: skip

    def _click_save(self) -> tuple[str, str]:
        """Save from the boxes; replacing another stored segment takes a second click."""
        name, label = self.name.value.strip(), self.label.value.strip() or None
        segment, replaced = self._planned_save(name, label, "dynamic")
        request = (segment.name, segment.rule, label)
        if replaced is not None and self._confirming != request:
            self._confirming = request
            return f"{self._exists(replaced)} Click Save again to replace it.", "warn"
        self._confirming = None
        saved = self.save(name, label=label, replace=True)
        was = f" It replaced v{replaced.version}: {replaced.rule}" if replaced else ""
        return f"Saved segment {saved.name} v{saved.version}.{was}", "ok"

    def _click_export(self) -> tuple[str, str]:
        summary = self.export()
        where = (
            f"Channel {self.consent_channel.value}, purpose {self.consent_purpose.value}; "
            f"written to {self.out_dir}."
        )
        return f"{summary}. {where}", "ok" if summary.kept else "warn"

    def _guarded(self, action: Any) -> None:
        """Run a button's action, showing its result or error in the status line."""
        try:
            message, tone = action()
        except CrmMlError as exc:
            self._show(str(exc), "error")
            return
        self._show(message, tone)

    def _show(self, message: str, tone: str) -> None:
        """Show ``message`` (plain text) in the status line, coloured by ``tone``; "" clears it."""
        colour = STATUS_COLOURS[tone]
        text = html.escape(message)
        self.status.value = f"<span style='color:{colour}'>{text}</span>" if message else ""


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _warnings_caught() -> Iterator[list[str]]:
    """Collect the warnings crm_ml logs in the block (they are still logged)."""
    handler = _Collected()
    logger = logging.getLogger("crm_ml")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
