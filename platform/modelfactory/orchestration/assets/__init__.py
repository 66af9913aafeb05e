"""The asset factory: one model project in, its Dagster assets, checks and jobs out.

    raw ──► features ──► split ──► candidate ──► evaluation ──► champion ──► endpoint
    (pandera, blocking)            (MLflow run,   (vs champion,  (alias moves   (canary
                                    registered)    thresholds,    only through   rollout)
                                                   slices)        the gate)
              features ──► predictions (batch, champion)         endpoint ──► live_metrics
              split ──► drift_report (Evidently, captured requests vs training inputs)

Only this package knows Dagster's asset API; the project's functions stay plain, and the
decisions (the gate's verdict, the champion move) are lifecycle/'s plain functions. One
module per step group: data.py (raw, features, split), training.py (candidate),
evaluation.py, promotion.py (champion, endpoint), card.py (model_card), production.py
(predictions, drift_report, live_metrics); shared.py holds the keys and job names.
Keys are `<model>/<step>`, grouped by model, with owner, kinds and tags applied here once.
"""

from dagster import AssetsDefinition

from modelfactory.orchestration.assets.card import card_assets
from modelfactory.orchestration.assets.data import data_assets
from modelfactory.orchestration.assets.evaluation import evaluation_assets
from modelfactory.orchestration.assets.production import production_assets
from modelfactory.orchestration.assets.promotion import PromotionConfig, promotion_assets
from modelfactory.orchestration.assets.shared import (
    SIDE_STEPS,
    STEPS,
    Graph,
    drift_report_job_name,
    live_metrics_job_name,
    predict_job_name,
    refresh_job_name,
    train_job_name,
)
from modelfactory.orchestration.assets.training import training_assets
from modelfactory.project.loader import ModelProject

__all__ = [
    "SIDE_STEPS",
    "STEPS",
    "PromotionConfig",
    "build_assets",
    "drift_report_job_name",
    "live_metrics_job_name",
    "predict_job_name",
    "refresh_job_name",
    "train_job_name",
]


def build_assets(project: ModelProject) -> list[AssetsDefinition]:
    """Every asset of one model project, in the order of its lineage."""
    graph = Graph.of(project)
    return [
        *data_assets(graph),
        *training_assets(graph),
        *evaluation_assets(graph),
        *promotion_assets(graph),
        *card_assets(graph),
        *production_assets(graph),
    ]
