"""The audit trail on real parts: runs, verdicts, champion moves and alerts land in the
platform's database (sqlite here, Postgres in test_production.py), and `modelfactory history`
answers which version was the champion at any moment, and why."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import train_with
from modelfactory.cli import main
from modelfactory.stores.home import platform_db_url

pytestmark = pytest.mark.slow
MODEL = "demand_forecast"


def moment() -> datetime:
    """Now, then a pause, so the next event is clearly later (and the registry, which
    stamps moves to the second, agrees with the trail)."""
    now = datetime.now(UTC)
    time.sleep(1.1)
    return now


def at(when: datetime | str) -> str:
    text = when if isinstance(when, str) else when.isoformat()
    result = CliRunner().invoke(main, ["history", MODEL, "--at", text])
    assert result.exit_code == 0, result.output
    return result.output


def test_promote_roll_back_and_promote_again_each_moment_has_its_champion(copy_example) -> None:
    root = copy_example(MODEL, segments=False)
    before = moment()
    first = train_with(root, alpha=100.0)  # v1, the first champion
    one = moment()
    second = train_with(root, alpha=1.0)  # v2 beats v1
    two = moment()
    rolled = CliRunner().invoke(main, ["rollback", MODEL, "--reason", "bad live metrics"])
    assert rolled.exit_code == 0, rolled.output
    back = moment()
    third = train_with(root, alpha=1.0)  # v3 beats v1 again
    assert [o.promoted for o in (first, second, third)] == [True, True, True]
    three = moment()

    assert "no champion yet; the first, v1, came " in at(before)
    assert f"v1 was the champion\n  since {one:%Y-%m-%d}" in at(one)
    assert "promoted: champion vnone -> v1 by dagster:" in at(one)
    assert "v2 was the champion" in at(two) and "promoted: champion v1 -> v2" in at(two)
    answer = at(back)
    assert "v1 was the champion" in answer
    assert "rolled back: champion v2 -> v1 by " in answer and ": bad live metrics" in answer
    assert "v3 was the champion" in at(three)
    assert "v3 was the champion" in at(f"{three:%Y-%m-%d}")  # a day means its end
    elsewhere = one.astimezone(timezone(timedelta(hours=2)))  # the same moment, at +02:00
    assert f"at {one:%Y-%m-%d %H:%M:%S} UTC: v1 was the champion" in at(elsewhere)

    timeline = CliRunner().invoke(main, ["history", MODEL]).output.splitlines()
    assert timeline[0] == f"{MODEL}: {len(timeline) - 1} event(s)"
    kinds = [line.split(maxsplit=3)[2] for line in timeline[1:]]
    assert kinds.count("trained") == 3 and kinds.count("evaluated") == 3
    assert [line for line in timeline if "rolled back:" in line]
    assert any("alert promoted (info)" in line for line in timeline)
    first_lines = [line for line in timeline if " v1 " in line or "v1:" in line]
    assert "trained v1 in run" in first_lines[0]  # oldest first
    assert "evaluated v2 against v1: passed" in "\n".join(timeline)

    # The tables themselves: one row per training run, with its session and environment.
    engine = sa.create_engine(platform_db_url())
    with engine.connect() as con:
        runs = con.execute(
            sa.text("SELECT dagster_run_id, version, environment FROM mf_training_runs")
        ).fetchall()
    assert [(r[0], r[1]) for r in runs] == [
        (first.run_id, "1"),
        (second.run_id, "2"),
        (third.run_id, "3"),
    ]
    assert '"scikit-learn"' in runs[0][2]

    # For a time before the trail began, the registry's own record of moves answers.
    with engine.begin() as con:
        con.execute(sa.text("DELETE FROM mf_alias_moves"))
    answer = at(two)
    assert "v2 was the champion (from the registry; before the audit trail began)" in answer


@pytest.mark.parametrize("moment", ["May 1st", "20260501"])
def test_a_bad_moment_is_refused_naming_the_option(copy_example, moment: str) -> None:
    copy_example(MODEL, segments=False)
    result = CliRunner().invoke(main, ["history", MODEL, "--at", moment])
    assert result.exit_code == 2 and "--at" in result.output and "YYYY-MM-DD" in result.output
