"""One model project's code location: its assets, jobs, schedules, sensors and resources."""

from dagster import AssetKey, AssetSelection, Definitions, define_asset_job, in_process_executor

from modelfactory.orchestration.assets import (
    SIDE_STEPS,
    STEPS,
    build_assets,
    drift_report_job_name,
    live_metrics_job_name,
    predict_job_name,
    refresh_job_name,
    train_job_name,
)
from modelfactory.orchestration.resources import project_resources
from modelfactory.orchestration.run_tags import run_tags
from modelfactory.orchestration.schedules import build_schedules
from modelfactory.orchestration.sensors import build_sensors
from modelfactory.project.loader import ModelProject

__all__ = ["build_definitions"]


def build_definitions(project: ModelProject) -> Definitions:
    """A code location for one model project: its assets, jobs, schedules, sensors and
    resources."""
    name = project.name
    tags = run_tags(project.spec)  # size, max runtime, one run per model at a time
    only = {step: AssetSelection.assets(AssetKey([name, step])) for step in SIDE_STEPS}
    train_job = define_asset_job(
        train_job_name(name),
        selection=AssetSelection.assets(*(AssetKey([name, step]) for step in STEPS)),
        description=f"Train, evaluate and (per the gate) promote {name}.",
        tags=tags,
    )
    spec = project.spec
    # Fresh features first, in the same job where Dagster allows it: not between a segmented
    # model's segment-partitioned features and its day-and-segment predictions. There the
    # schedule runs the refresh job per segment, and each success scores its days (the
    # modelfactory_score_refreshed sensor).
    fresh_features = spec.predictions is None or spec.segments is None
    refresh_job = None
    if not fresh_features:
        refresh_job = define_asset_job(
            refresh_job_name(name),
            selection=AssetSelection.assets(AssetKey([name, "raw"]), AssetKey([name, "features"])),
            description=(
                f"Refresh one segment's raw data and features of {name}; a scheduled run "
                "then scores the days it was run for."
            ),
            tags=tags,
        )
    predict_job = define_asset_job(
        predict_job_name(name),
        selection=(
            AssetSelection.assets(AssetKey([name, "raw"]), AssetKey([name, "features"]))
            if fresh_features
            else AssetSelection.assets()
        )
        | only["predictions"],
        description=(
            f"Score {name}'s "
            + ("latest features" if fresh_features else "features of its segment's last refresh")
            + (" of one day" if spec.predictions else "")
            + " with the champion, into the warehouse."
        ),
        tags=tags,
    )
    # The evidence jobs refresh the model card after it: its drift and live lines read them.
    card = AssetSelection.assets(AssetKey([name, "model_card"]))
    report_job = define_asset_job(
        drift_report_job_name(name),
        selection=only["drift_report"] | card,
        description=(
            f"An Evidently drift report on {name}'s latest captured requests (or the window "
            "the drift sensor judged), then the model card with its drift line."
        ),
        tags=tags,
    )
    live_job = define_asset_job(
        live_metrics_job_name(name),
        selection=only["live_metrics"] | card,
        description=(
            f"{name}'s live metric per version, from predictions and late labels, then the "
            "model card with its live line."
        ),
        tags=tags,
    )
    jobs = [train_job, predict_job, report_job, live_job]
    return Definitions(
        assets=build_assets(project),
        jobs=jobs + ([refresh_job] if refresh_job else []),
        schedules=build_schedules(project, train_job, predict_job, refresh_job),
        sensors=build_sensors(
            [
                (
                    project,
                    {
                        "train": train_job,
                        "predict": predict_job,
                        "drift_report": report_job,
                        "live_metrics": live_job,
                        "refresh": refresh_job,
                    },
                )
            ]
        ),
        resources=project_resources(name),
        executor=in_process_executor,
    )
