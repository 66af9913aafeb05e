"""The model card's rendering on what real runs can record: values that would break a
Markdown table, slices with no metric, markup in the spec. (Cards of real runs are checked
in test_materialize.py and test_live_metrics.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from modelfactory.project.loader import load_project
from modelfactory.reports.model_card import CardFacts, render_html, render_markdown
from modelfactory.stores.registry import VersionInfo


def champion(**tags: str) -> VersionInfo:
    """A registry version as MLflow hands it back: tags are strings."""
    recorded = {
        "mf.holdout.mae": "2.5",
        "mf.holdout_rows": "480",
        "mf.train_rows": "1920",
        "mf.data_hash": "abc123",
        "mf.schema": json.dumps({"price": "float64", "odd|name": "object"}),
    }
    return VersionInfo("m", "3", "run-1", recorded | tags, datetime(2026, 5, 1, tzinfo=UTC))


def card(copy_example, version: VersionInfo, edit=None) -> str:
    project = load_project(copy_example("demand_forecast", edit=edit))
    facts = CardFacts(
        spec=project.spec, unit="m", champion=version, challenger=None, last_move=None
    )
    return render_markdown(facts)


def table_rows(markdown: str, header: str) -> list[list[str]]:
    """The cells of each row of the table under `header` (escaped pipes kept as one cell)."""
    lines = markdown.split(header, 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = [line.replace("\\|", "\0").strip("|").split("|") for line in lines]
    return [[cell.strip().replace("\0", "|") for cell in row] for row in rows]


def test_slices_without_a_metric_and_values_with_pipes_keep_the_tables_whole(
    copy_example,
) -> None:
    slices = [
        {"slice": "promo=1|x", "rows": 3, "mae": None, "gap": None, "judged": False},
        {"slice": "promo=0", "rows": 477, "mae": 2.4, "gap": 0.04, "judged": True},
    ]
    text = card(copy_example, champion(**{"mf.slices": json.dumps(slices)}))
    assert table_rows(text, "| slice | rows | mae | gap |") == [
        ["promo=1|x", "3", "n/a", "n/a (too few rows to judge)"],
        ["promo=0", "477", "2.4", "4.0%"],
    ]
    assert "Largest fairness gap between a slice and the whole: 4.0%." in text
    assert table_rows(text, "| column | type |") == [["price", "float64"], ["odd|name", "object"]]


def test_a_version_from_before_cards_says_what_was_not_recorded(copy_example) -> None:
    old = VersionInfo("m", "1", "run-0", {"mf.holdout.mae": "2.5"}, datetime.now(UTC))
    text = card(copy_example, old)
    assert "Per slice: not recorded for v1." in text  # slices are configured, not recorded
    assert "## Training data\nNot recorded for v1." in text


def test_the_html_card_carries_no_markup_from_the_spec(copy_example) -> None:
    def edit(spec: dict) -> None:
        spec["intended_use"] = "<script>alert(1)</script> stock planning"

    text = card(copy_example, champion(), edit=edit)
    html = render_html(text, "Model card: <m>")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<title>Model card: &lt;m&gt;</title>" in html


def test_a_classifier_card_shows_its_scores_per_class(copy_example) -> None:
    per_class = [
        {"class": "Adelie", "precision": 0.95, "recall": 1.0, "f1": 0.974, "support": 30},
        {"class": "Chin|strap", "precision": None, "recall": 0.0, "f1": None, "support": 2},
    ]
    version = champion(**{"mf.holdout.f1_macro": "0.61", "mf.per_class": json.dumps(per_class)})
    project = load_project(copy_example("breast_cancer"))
    facts = CardFacts(
        spec=project.spec, unit="m", champion=version, challenger=None, last_move=None
    )
    text = render_markdown(facts)
    assert table_rows(text, "| class | precision | recall | f1 | support |") == [
        ["Adelie", "0.95", "1", "0.974", "30"],
        ["Chin|strap", "n/a", "0", "n/a", "2"],
    ]
    assert ["f1_macro", "0.61", "higher"] in table_rows(text, "| metric | value | better |")
    unrecorded = render_markdown(CardFacts(project.spec, "m", champion(), None, None))
    assert "Per class: not recorded for v3." in unrecorded
