"""The serving parts on their own: request schemas, rollout states, the canary's judge, capture.

Each runs on its real store (sqlite for rollouts, DuckDB for capture) in a temp home.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelfactory.errors import ProjectError
from modelfactory.lifecycle.canary import judge
from modelfactory.project.loader import load_project
from modelfactory.project.spec import CanarySpec
from modelfactory.serving.batching import PredictResult
from modelfactory.serving.capture import CaptureFlusher, CaptureSpool
from modelfactory.serving.request_schema import build_request_model, input_columns
from modelfactory.stores.home import local_home, rollout_store
from modelfactory.stores.inference_reader import VersionStats, read_inference_log, version_stats
from modelfactory.stores.rollouts import RolloutConflict

ROW = {"marketplace": "uk", "price": 9.5, "promo": 1, "temperature": 20.0, "is_weekend": 0}


# -- request schema -------------------------------------------------------------------


def test_request_rows_are_derived_from_the_feature_schema(copy_example) -> None:
    request = build_request_model(load_project(copy_example("demand_forecast")), max_rows=3)

    # the target and the time column are not inputs
    assert input_columns(request) == ["marketplace", "price", "promo", "temperature", "is_weekend"]
    assert request.model_validate({"rows": [ROW]}).rows == [ROW]  # plain dicts, ready for pandas

    cases = [
        ("price", -1.0, "greater than 0"),
        ("price", "9.5", "valid number"),  # strict: a string is not a number
        ("temperature", float("inf"), "finite number"),  # JSON's 1e400
        ("marketplace", "fr", "'uk', 'de' or 'us'"),
        ("temperature", 51.0, "less than or equal to 50"),
        ("promo", "1", "0 or 1"),
    ]
    for field, value, message in cases:
        with pytest.raises(ValidationError) as caught:
            request.model_validate({"rows": [{**ROW, field: value}]})
        (error,) = caught.value.errors()
        assert error["loc"] == ("rows", 0, field) and message in error["msg"]

    with pytest.raises(ValidationError, match="extra"):
        request.model_validate({"rows": [{**ROW, "colour": "red"}]})
    with pytest.raises(ValidationError, match="at most 3"):
        request.model_validate({"rows": [ROW] * 4})
    with pytest.raises(ValidationError, match="at least 1"):
        request.model_validate({"rows": []})


def test_a_project_may_give_its_own_request_row(copy_example) -> None:
    root = copy_example("demand_forecast")
    with (root / "schemas.py").open("a") as schemas:
        schemas.write(
            "\n\nfrom pydantic import BaseModel\n\n\n"
            "class RequestRow(BaseModel):\n"
            "    marketplace: str\n    price: float\n    promo: int\n"
            "    temperature: float\n    is_weekend: int\n    note: str = ''\n"
        )
    request = build_request_model(load_project(root))
    assert input_columns(request)[-1] == "note"


def test_a_feature_type_json_cannot_carry_is_a_clear_error(copy_example) -> None:
    root = copy_example("demand_forecast")
    text = (root / "schemas.py").read_text()
    (root / "schemas.py").write_text(
        text.replace(
            "is_weekend: Series[int] = pa.Field(isin=[0, 1])", "is_weekend: Series[pa.Timedelta]"
        )
    )
    with pytest.raises(
        ProjectError, match=r"schemas.py: FeatureSchema column 'is_weekend'.*RequestRow"
    ):
        build_request_model(load_project(root))


# -- rollout states -------------------------------------------------------------------


def test_a_rollout_walks_its_steps_and_refuses_stale_changes() -> None:
    store = rollout_store()
    spec = CanarySpec(steps=[5, 50, 100])

    pending = store.reserve("m", stable="1", canary="2", spec=spec, reason="gate passed")
    assert (pending.state, pending.percent, pending.active) == ("pending", 0, True)

    first = store.start(pending)
    assert (first.state, first.stage, first.percent) == ("canary", 0, 5)
    second = store.advance(first, "healthy")
    assert (second.percent, second.stage_started_at >= first.stage_started_at) == (50, True)

    with pytest.raises(RolloutConflict, match="step 2/3"):
        store.advance(first, "a second sensor acting on what it saw before")

    done = store.advance(second, "healthy")
    assert (done.state, done.percent, done.active) == ("completed", 100, False)
    assert store.active("m") is None and store.latest("m") == done


def test_a_new_promotion_starts_from_what_serves_and_supersedes_when_it_starts() -> None:
    store = rollout_store()
    old = store.start(store.reserve("m", stable="1", canary="2", spec=CanarySpec(), reason=""))
    # the alias already points at the unproven v2; v1 is what serves, so v3 is tried against v1
    new = store.reserve("m", stable="2", canary="3", spec=CanarySpec(shadow=True), reason="")
    assert new.stable_version == "1"
    assert store.get(old.id).state == "canary"  # until the new one starts
    assert store.all_active() == {"m": new} and store.active("m") == new

    shadow = store.start(new)
    assert store.get(old.id).state == "cancelled" and "superseded by v3" in store.get(old.id).reason
    assert (shadow.state, shadow.percent) == ("shadow", 0)
    assert store.advance(shadow, "shadow healthy").percent == 5


def test_a_failed_promotion_leaves_the_running_rollout_in_charge() -> None:
    store = rollout_store()
    running = store.start(store.reserve("m", stable="1", canary="2", spec=CanarySpec(), reason=""))
    reserved = store.reserve("m", stable="2", canary="3", spec=CanarySpec(), reason="")
    store.finish(reserved, "cancelled", "the promotion failed")
    assert store.active("m") == running


def test_a_single_step_rollout_completes_when_it_starts() -> None:
    store = rollout_store()
    pending = store.reserve("m", stable="1", canary="2", spec=CanarySpec(steps=[100]), reason="")
    assert store.start(pending).state == "completed"


# -- the canary's judge ---------------------------------------------------------------


def _canary(spec: CanarySpec):
    store = rollout_store()
    return store.start(store.reserve("m", stable="1", canary="2", spec=spec, reason=""))


@pytest.mark.parametrize(
    ("canary", "stable", "action", "why"),
    [  # (requests, errors, p95 ms) of each version
        ((50, 0, 3.0), (900, 0, 3.0), "wait", "50/200"),
        ((200, 1, 3.0), (900, 0, 3.0), "advance", "healthy over 200"),
        ((30, 3, 3.0), (900, 0, 3.0), "rollback", "failed 3 of 30"),
        ((400, 5, 3.0), (900, 0, 3.0), "rollback", "failed 5 of 400"),
        ((250, 0, 40.0), (900, 0, 8.0), "rollback", "p95 latency 40.0 ms > 24.0 ms"),
        ((250, 0, 12.0), (900, 0, 1.0), "advance", "p95 12.0 ms"),  # within 3x the 5 ms floor
    ],
)
def test_the_canary_judge(canary, stable, action, why) -> None:
    spec = CanarySpec(min_requests=200, max_error_rate=0.01, max_latency_ratio=3.0)
    stats = [VersionStats("2", "canary", *canary), VersionStats("1", "stable", *stable)]
    verdict = judge(_canary(spec), stats, spec)
    assert verdict.action == action and why in verdict.reason


def test_the_judge_reads_shadow_traffic_in_the_shadow_phase() -> None:
    spec = CanarySpec(min_requests=10, shadow=True)
    rollout = _canary(spec)
    assert rollout.state == "shadow"
    answered = VersionStats("2", "canary", 50, 0, 1.0)  # not shadow traffic: does not count
    assert judge(rollout, [answered], spec).action == "wait"
    shadow = VersionStats("2", "shadow", 10, 0, 1.0)
    assert judge(rollout, [shadow], spec).action == "advance"


# -- capture --------------------------------------------------------------------------


def _record(request_id: str, rows: int = 2, version: str = "1") -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "received_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "model_version": version,
            "role": "stable",
            "status": "ok",
            "error": None,
            "latency_ms": 1.5,
            "inputs": [ROW] * rows,
            "outputs": [float(i) for i in range(rows)],
            "scores": None,
        }
    ).encode()


def test_capture_flushes_each_row_once(tmp_path: Path) -> None:
    home = local_home()
    spool = CaptureSpool(home.capture("m"))
    flusher = CaptureFlusher("m", spool, home.warehouse("m"))
    for i in range(3):
        spool.append(_record(f"r{i}"))

    assert flusher.flush() == 6
    assert flusher.flush() == 0  # the committed offset moved: nothing twice
    spool.append(_record("r3", rows=1, version="2"))
    assert flusher.flush() == 1

    log = read_inference_log(home.warehouse("m"), "m")
    assert len(log) == 7 and log["request_id"].nunique() == 4
    assert json.loads(log["features"].iloc[0]) == ROW
    assert sorted(log.loc[log.request_id == "r1", "prediction"]) == [0.0, 1.0]
    stats = version_stats(home.warehouse("m"), "m", since=datetime.now(UTC) - timedelta(minutes=1))
    assert [(s.version, s.requests, s.errors) for s in stats] == [("1", 3, 0), ("2", 1, 0)]


def test_capture_takes_over_what_a_dead_server_spooled(tmp_path: Path) -> None:
    """A killed server's segment is flushed by the next one; its torn last line was never answered."""
    home = local_home()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname().replace("-", "_")
    segment = home.capture("m") / f"{1:020d}-{host}-{int(dead.stdout)}.jsonl"
    elsewhere = home.capture("m") / f"{2:020d}-another_host-{int(dead.stdout)}.jsonl"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(
        _record("answered-1") + b"\n" + _record("answered-2") + b"\n" + _record("torn")[:40]
    )
    elsewhere.write_bytes(_record("another host's") + b"\n")  # its own server flushes it

    spool = CaptureSpool(home.capture("m"))  # the restarted server
    flusher = CaptureFlusher("m", spool, home.warehouse("m"))
    assert flusher.flush() == 4
    assert not segment.exists()
    log = read_inference_log(home.warehouse("m"), "m")
    assert set(log["request_id"]) == {"answered-1", "answered-2"}
    assert sorted(os.listdir(home.capture("m"))) == sorted([spool.current.name, elsewhere.name])
    assert flusher.flush() == 0  # nothing twice


def test_a_closed_spool_is_archived_once_its_rows_are_in_and_a_failed_archive_waits(
    tmp_path: Path,
) -> None:
    """The archive (S3 in production) gets each segment whole, after its rows are in the
    warehouse; an upload that fails keeps the segment for the next flush, rows not doubled."""
    home = local_home()
    archived: dict[str, bytes] = {}
    failures = [OSError("S3 is unreachable")]

    def archive(segment: Path) -> None:
        if failures:
            raise failures.pop()
        archived[segment.name] = segment.read_bytes()

    spool = CaptureSpool(home.capture("m"))
    flusher = CaptureFlusher("m", spool, home.warehouse("m"), archive=archive)
    spool.append(_record("r0"))
    assert flusher.flush() == 2 and not archived  # still open: it may grow
    spool.append(_record("r1"))
    spool.close()  # the server stops answering
    assert flusher.flush() == 2  # loaded; the upload failed (logged), nothing else stops
    assert spool.current.exists()  # kept for the next try
    assert flusher.flush() == 0  # its rows went in before the failed upload; not again
    assert list(archived) == [spool.current.name] and not spool.current.exists()
    assert archived[spool.current.name].count(b"\n") == 2
    log = read_inference_log(home.warehouse("m"), "m")
    assert sorted(log["request_id"]) == ["r0", "r0", "r1", "r1"]


def test_a_quiet_spool_closes_its_segment_once_it_is_old(monkeypatch) -> None:
    from modelfactory.serving import capture

    spool = CaptureSpool(local_home().capture("m"))
    monkeypatch.setattr(capture, "_SEGMENT_SECONDS", 0.0)
    first = spool.current
    spool.rotate_if_due()
    assert spool.current == first  # nothing in it: nothing to close
    spool.append(_record("r0"))
    spool.rotate_if_due()
    assert spool.current != first and first.exists()  # closed, for the flusher to finish


# -- micro-batching -------------------------------------------------------------------


def _batcher(fail_on: str | None = None, delay: float = 0.01):
    import time as _time

    from modelfactory.serving.batching import MicroBatcher

    sizes: list[int] = []

    def predict(rows):
        _time.sleep(delay)  # a predict call that costs the same for 1 row or many
        if any(row.get("x") == fail_on for row in rows):
            raise ValueError(f"cannot predict {fail_on!r}")
        return [row["x"] * 2 for row in rows], None

    return MicroBatcher(predict, None, on_batch=sizes.append), sizes


def test_concurrent_requests_share_predict_calls_and_get_their_own_answers() -> None:
    import asyncio

    batcher, sizes = _batcher()

    async def main():
        return await asyncio.gather(
            *(batcher.predict([{"x": f"{i}"}] * (1 + i % 3)) for i in range(30))
        )

    answers = asyncio.run(main())
    assert [answer.predictions for answer in answers] == [
        [f"{i}" * 2] * (1 + i % 3) for i in range(30)
    ]
    assert sum(sizes) == sum(1 + i % 3 for i in range(30)) and len(sizes) < 30 / 3


def test_a_request_that_breaks_the_model_fails_alone() -> None:
    import asyncio

    batcher, _ = _batcher(fail_on="bad")

    async def main():
        return await asyncio.gather(
            *(batcher.predict([{"x": x}]) for x in ["a", "bad", "c"]), return_exceptions=True
        )

    good_a, bad, good_c = asyncio.run(main())
    assert good_a.predictions == ["aa"] and good_c.predictions == ["cc"]
    assert isinstance(bad, ValueError)


def test_a_closed_batcher_answers_what_it_holds_and_restarts_for_a_late_request() -> None:
    import asyncio

    batcher, _ = _batcher()

    async def main():
        queued = [asyncio.ensure_future(batcher.predict([{"x": "q"}])) for _ in range(5)]
        await asyncio.sleep(0)
        batcher.close()
        batcher.close()  # twice is harmless
        answered = await asyncio.wait_for(asyncio.gather(*queued), timeout=5)
        late = await asyncio.wait_for(batcher.predict([{"x": "late"}]), timeout=5)
        return answered, late

    answered, late = asyncio.run(main())
    assert answered == [PredictResult(["qq"])] * 5 and late == PredictResult(["latelate"])


def test_a_forgotten_pending_rollout_is_started_or_cancelled(monkeypatch) -> None:
    """The endpoint asset did not run after a promotion (its run failed): the sensor steps in."""
    from modelfactory.lifecycle import canary

    store = rollout_store()
    pending = store.reserve("m", stable="1", canary="2", spec=CanarySpec(), reason="")
    assert canary._start_if_forgotten(pending, store, promoted=True).verdict.action == "wait"

    monkeypatch.setattr(canary, "PENDING_GRACE", timedelta(0))
    started = canary._start_if_forgotten(pending, store, promoted=True).rollout
    assert (started.state, started.percent) == ("canary", 5)
    never = store.reserve("n", stable="1", canary="2", spec=CanarySpec(), reason="")
    cancelled = canary._start_if_forgotten(never, store, promoted=False).rollout
    assert cancelled.state == "cancelled" and "never promoted" in cancelled.reason


def test_the_canary_judges_on_without_labels_it_cannot_read(tmp_path: Path) -> None:
    """A label file without the target column is the live-metric sensor's to announce; the
    canary's live check gives no verdict instead of raising on every tick."""
    from modelfactory.errors import LabelsError
    from modelfactory.lifecycle.canary import LiveRule, _live_verdict
    from modelfactory.project.spec import LiveMetricSpec
    from modelfactory.stores.inference_reader import read_labelled
    from modelfactory.stores.rollouts import Rollout

    home = local_home()
    spool = CaptureSpool(home.capture("m"))
    spool.append(_record("r0"))
    CaptureFlusher("m", spool, home.warehouse("m")).flush()
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "day1.csv").write_text("request_id,row_index,not_the_target\nr0,0,1\n")
    with pytest.raises(LabelsError):  # what the sensor reads, and announces once
        read_labelled(home.warehouse("m"), "m", [labels / "day1.csv"], target="y")

    now = datetime.now(UTC)
    rollout = Rollout(1, "m", "1", "2", (50, 100), False, "canary", 0, 50, now, now, now, "")
    rule = LiveRule(labels, "y", "regression", "mae", LiveMetricSpec(min_labels=10))
    assert _live_verdict(rollout, home.warehouse("m"), rule) is None
