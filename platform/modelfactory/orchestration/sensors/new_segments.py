"""`modelfactory_new_segments`: a new value of a model's segment column becomes a segment."""

from __future__ import annotations

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from modelfactory.orchestration.partitions import discover_segments, partitions_def
from modelfactory.orchestration.sensors.names import NEW_SEGMENTS_SENSOR
from modelfactory.orchestration.sensors.tick import (
    FleetModel,
    Outcome,
    SensorCursor,
    Tick,
    all_jobs,
    listed,
)
from modelfactory.project.segments import segment_model
from modelfactory.stores.notify import Notifier


def build_new_segment_sensor(models: list[FleetModel]) -> SensorDefinition:
    @sensor(
        name=NEW_SEGMENTS_SENSOR,
        jobs=all_jobs(models, "train"),
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Reads the raw data of each model with discovered segments every 5 minutes; a "
            "value of its `segments.by` column seen for the first time becomes a segment (a "
            "partition of every asset of the model) and its first model trains. Reads "
            + listed(models)
        ),
    )
    def new_segment_sensor(
        context: SensorEvaluationContext, notifier: Notifier
    ) -> SensorResult | SkipReason:
        tick = Tick(
            context, SensorCursor(context.cursor), notifier, "segment discovery", len(models) > 1
        )
        found = {m.name: tick.guarded(m.name, lambda m=m: _new_segments(tick, m)) for m in models}
        tick.cursors.save(context)
        return _segment_result(models, found)

    return new_segment_sensor


def _new_segments(tick: Tick, model: FleetModel) -> Outcome:
    """The model's first-train runs of segments its raw data holds and Dagster does not
    know yet, or the words for none."""

    partitions = partitions_def(model.project.spec)
    known = set(partitions.get_partition_keys(dynamic_partitions_store=tick.context.instance))
    new = [s for s in discover_segments(model.project) if s not in known]
    if not new:
        by = model.project.spec.segments.by
        return tick.speaker(model.name, None)(f"no new values of {by!r} ({len(known)} segments)")
    return [
        RunRequest(
            job_name=model.job("train").name,
            partition_key=s,
            # Run keys are per sensor, which all models share: the unit names the model.
            run_key=f"first-{segment_model(model.name, s)}",
        )
        for s in new
    ]


def _segment_result(
    models: list[FleetModel], found: dict[str, Outcome]
) -> SensorResult | SkipReason:
    """The first-train runs and the partitions they need, added in the same tick."""

    adds = [
        partitions_def(m.project.spec).build_add_request([r.partition_key for r in found[m.name]])
        for m in models
        if isinstance(found[m.name], list)
    ]
    if not adds:
        return SkipReason("; ".join(str(o) for o in found.values()))
    requests = [r for o in found.values() if isinstance(o, list) for r in o]
    return SensorResult(run_requests=requests, dynamic_partitions_requests=adds)
