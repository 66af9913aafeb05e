"""The model card: what a model is, who owns it, how good it is and for whom, what it was
trained on and how it does in production, in one page.

Its facts come from where they are recorded anyway: the spec (owner, intended use,
assumptions, limitations), the champion's and challenger's registry tags (holdout metrics,
slices, data hash, time range, schema, verdict), the registry's alias history (when, by
whom and why the champion moved) and the latest drift report and live metrics in Dagster.
Rendering is plain string work, so a card can be read, diffed and tested as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from modelfactory.ml.evaluation import METRICS
from modelfactory.stores.audit import by_whom
from modelfactory.stores.urls import dagster_asset_url

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from modelfactory.project.loader import ModelProject
    from modelfactory.project.spec import ModelSpec
    from modelfactory.stores.registry import AliasMove, ModelRegistry, VersionInfo

# Deferred imports: markdown-it loads only to render a card's HTML, and dagster only to read the
# latest card from an instance; the facts and the markdown are plain.

__all__ = ["CardFacts", "gather", "render_html", "render_markdown"]

_BETTER = {"minimize": "lower", "maximize": "higher"}


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says about one model (or one segment of it)."""

    spec: ModelSpec
    unit: str  # the model, or `<model>.<segment>`
    champion: VersionInfo | None
    challenger: VersionInfo | None
    last_move: AliasMove | None
    drift: dict[str, Any] | None = None  # the latest drift report's metadata
    live: dict[str, Any] | None = None  # the latest live metrics' metadata
    links: dict[str, str] = field(default_factory=dict)


def gather(
    project: ModelProject,
    registry: ModelRegistry,
    instance: DagsterInstance,
    unit: str,
    segment: str | None,
) -> CardFacts:
    """The facts of `unit`'s card, read from the registry and the Dagster instance."""
    champion = registry.champion(unit)
    moves = [m for m in registry.history(unit) if champion and m.to_version == champion.version]
    links = {"lineage": dagster_asset_url(project.name, "model_card")}
    if champion is not None:
        links[f"champion v{champion.version} in MLflow"] = registry.version_url(
            unit, champion.version
        )
        if champion.run_id:
            links["training run"] = registry.run_url_of(champion.run_id)
    drift = _latest_metadata(instance, project.name, "drift_report", segment)
    if drift and drift.get("report"):
        links["latest drift report"] = str(drift["report"])
    return CardFacts(
        spec=project.spec,
        unit=unit,
        champion=champion,
        challenger=registry.version_by_alias(unit, "challenger"),
        last_move=moves[-1] if moves else None,
        drift=drift,
        live=_latest_metadata(instance, project.name, "live_metrics", segment),
        links=links,
    )


def render_markdown(facts: CardFacts) -> str:
    """The card as Markdown, one section per question a reader brings."""
    parts = [
        f"# Model card: {facts.unit}",
        _overview(facts),
        _model(facts),
        _performance(facts),
        _training_data(facts),
        _in_production(facts),
        _links(facts),
    ]
    return "\n\n".join(parts) + "\n"


def render_html(markdown: str, title: str) -> str:
    """A standalone HTML page of the card (CommonMark with tables)."""
    from markdown_it import MarkdownIt

    # No raw HTML: the card quotes model.yaml, verdicts and data values, none of them markup.
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n<body>\n{body}</body></html>\n"
    )


def _overview(facts: CardFacts) -> str:
    spec = facts.spec
    lines = [
        "## Overview",
        f"- **Owner:** {spec.owner}",
        f"- **Description:** {spec.description}",
        f"- **Intended use:** {spec.intended_use or 'not stated (model.yaml intended_use)'}",
        "",
        "**Assumptions**",
        *_bullets(spec.assumptions, "none stated (model.yaml assumptions)"),
        "",
        "**Limitations**",
        *_bullets(spec.limitations, "none stated (model.yaml limitations)"),
    ]
    return "\n".join(lines)


def _model(facts: CardFacts) -> str:
    spec, champion, challenger = facts.spec, facts.champion, facts.challenger
    metric = spec.metric
    lines = [
        "## Model",
        f"- **Task:** {spec.task}, target `{spec.target}`",
        f"- **Metric:** {metric.name} ({metric.direction}), the one the promotion gate uses",
    ]
    if champion is None:
        lines.append("- **Champion:** none yet")
    else:
        lines.append(f"- **Champion:** v{champion.version}")
        move = facts.last_move
        if move is not None:
            how = "put back by a rollback" if move.event == "rollback" else "promoted"
            lines.append(f"  - {how} {move.at} {by_whom(move.actor)}: {move.reason}")
    if challenger is not None:
        verdict = challenger.tags.get("mf.verdict", "not evaluated")
        lines.append(f"- **Challenger (last candidate):** v{challenger.version}, gate {verdict}")
        reasons = challenger.tags.get("mf.verdict_reasons")
        if reasons:
            lines.append(f"  - {reasons}")
    return "\n".join(lines)


def _performance(facts: CardFacts) -> str:
    lines = ["## Performance on the holdout"]
    champion = facts.champion
    if champion is None:
        return "\n".join([*lines, "No champion yet."])
    scores = champion.holdout_metrics
    rows = [(m.name, scores[m.name], m.direction) for m in METRICS.values() if m.name in scores]
    lines += [
        f"Champion v{champion.version} on {champion.tags.get('mf.holdout_rows', '?')} "
        "holdout rows:",
        "",
        "| metric | value | better |",
        "|---|---|---|",
        *(f"| {name} | {_number(value)} | {_BETTER[d]} |" for name, value, d in rows),
        "",
        *_per_class(facts.spec, champion),
    ]
    configured = facts.spec.promotion.slices
    if configured is None:
        return "\n".join([*lines, "Per slice: no slices configured (model.yaml promotion.slices)."])
    if "mf.slices" not in champion.tags:
        return "\n".join([*lines, f"Per slice: not recorded for v{champion.version}."])
    slices = json.loads(champion.tags["mf.slices"])
    metric, max_gap = facts.spec.metric.name, configured.max_gap
    judged = [s["gap"] for s in slices if s.get("judged") and s.get("gap") is not None]
    worst = max(judged, default=None)
    total = int(champion.tags.get("mf.slices_total", len(slices)))
    shown = f" (the {len(slices)} with the largest gaps of {total})" if total > len(slices) else ""
    lines += [
        f"Per slice{shown} ({metric}; the gap is relative to the overall value, "
        f"at most {max_gap:.0%} allowed):",
        "",
        f"| slice | rows | {metric} | gap |",
        "|---|---|---|---|",
        *(
            f"| {_cell(s['slice'])} | {s['rows']} | {_number(s.get(metric))} | "
            f"{_percent(s.get('gap'))}{'' if s.get('judged') else ' (too few rows to judge)'} |"
            for s in slices
        ),
        "",
        f"Largest fairness gap between a slice and the whole: {worst:.1%}."
        if worst is not None
        else "No slice had enough rows to judge.",
    ]
    return "\n".join(lines)


def _per_class(spec: ModelSpec, champion: VersionInfo) -> list[str]:
    """A classifier's precision, recall, f1 and support per class on the holdout, as its
    evaluation recorded them (tag mf.per_class)."""
    if spec.task != "classification":
        return []
    if "mf.per_class" not in champion.tags:
        return [f"Per class: not recorded for v{champion.version}.", ""]
    classes = json.loads(champion.tags["mf.per_class"])
    return [
        "Per class:",
        "",
        "| class | precision | recall | f1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {_cell(str(c['class']))} | {_number(c.get('precision'))} | "
            f"{_number(c.get('recall'))} | {_number(c.get('f1'))} | {c.get('support')} |"
            for c in classes
        ),
        "",
    ]


def _training_data(facts: CardFacts) -> str:
    lines = ["## Training data"]
    champion = facts.champion
    if champion is None:
        return "\n".join([*lines, "No champion yet."])
    tags = champion.tags
    if "mf.schema" not in tags:
        return "\n".join([*lines, f"Not recorded for v{champion.version}."])
    schema = json.loads(tags["mf.schema"])
    lines += [
        f"- **Rows:** {tags.get('mf.train_rows', '?')} for training, "
        f"{tags.get('mf.holdout_rows', '?')} held out",
        f"- **Time range:** {tags.get('mf.time_range', 'no time column (model.yaml split.by)')}",
        f"- **Content hash:** `{tags.get('mf.data_hash', '?')}`",
        f"- **Code version:** `{tags.get('mf.code_version', '?')}` "
        f"(git {tags.get('mf.git_sha', 'unknown')})",
        f"- **Schema (model inputs):** {len(schema)} columns",
        "",
        "| column | type |",
        "|---|---|",
        *(f"| {_cell(column)} | {_cell(dtype)} |" for column, dtype in schema.items()),
    ]
    return "\n".join(lines)


def _in_production(facts: CardFacts) -> str:
    drift, live = facts.drift, facts.live
    drift_line = "not known yet (no drift report)"
    if drift and "drifted" not in drift:  # a report made before there was anything to judge
        drift_line = f"not known yet ({drift.get('summary') or 'nothing to judge yet'})"
    elif drift:  # the report's own summary says whether and where
        verdict = "drifted" if drift.get("drifted") else "no drift"
        drift_line = str(drift.get("summary") or verdict)
    champion = facts.champion.version if facts.champion else None
    if not live or "live_verdict" not in live:
        live_line = "not known yet (no labelled live predictions)"
    elif champion is None:
        live_line = "no champion to judge"
    elif str(live.get("champion_version")) != champion:
        live_line = (
            f"not known yet for v{champion}; the last one, of v{live.get('champion_version')}, "
            f"was {live['live_verdict']}: {live.get('live_summary', '')}"
        )
    else:
        live_line = f"{live['live_verdict']}: {live.get('live_summary', '')}"
    lines = ["## In production", f"- **Drift:** {drift_line}", f"- **Live metric:** {live_line}"]
    return "\n".join(lines)


def _links(facts: CardFacts) -> str:
    return "\n".join(["## Links", *(f"- [{label}]({url})" for label, url in facts.links.items())])


def _cell(value: object) -> str:
    """A value inside a Markdown table cell: a `|` or a line break would split the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _number(value: object) -> str:
    """A metric value; a slice with one class or one row has none (NaN, stored as null)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if number != number else f"{number:.4g}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"


def _bullets(items: list[str], empty: str) -> list[str]:
    return [f"- {item}" for item in items] if items else [f"- {empty}"]


def _latest_metadata(
    instance: DagsterInstance, model: str, step: str, segment: str | None
) -> dict[str, Any] | None:
    """The metadata of the asset's latest materialization (of the segment's partition)."""
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey([model, step]),
            asset_partitions=[segment] if segment else None,
        ),
        limit=1,
    ).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    if materialization is None:
        return None
    return {key: value.value for key, value in materialization.metadata.items()}
