"""The model card step: `model_card`, the champion described for people (reports/model_card.py
gathers and renders it), stored with the champion's MLflow run."""

from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, Output, asset

from modelfactory.orchestration.assets.shared import Graph
from modelfactory.project.segments import unit_of
from modelfactory.reports.model_card import gather, render_html, render_markdown
from modelfactory.stores.registry import ModelRegistry

__all__ = ["card_assets"]


def card_assets(graph: Graph) -> list[AssetsDefinition]:
    project, spec, key = graph.project, graph.spec, graph.key

    @asset(
        key=key["model_card"],
        # It reads the registry and these assets' latest metadata, not their values.
        deps=[key["champion"], key["drift_report"], key["live_metrics"]],
        kinds={"mlflow"},
        required_resource_keys={"model_registry"},
        description=(
            "The champion's model card: owner, intended use, assumptions and limitations, "
            "holdout metrics overall and per slice, training data, drift and live metric, "
            "links. Stored as model_card.md/.html with the champion's MLflow run."
        ),
        **graph.common,
    )
    def model_card(context: AssetExecutionContext) -> Output:
        registry: ModelRegistry = context.resources.model_registry
        model = unit_of(context)
        segment = context.partition_key if spec.segments else None
        facts = gather(project, registry, context.instance, model, segment)
        markdown = render_markdown(facts)
        stored = "not stored: no champion yet"
        if facts.champion is not None and not facts.champion.run_id:
            stored = f"not stored: v{facts.champion.version} has no MLflow run"
        elif facts.champion is not None:
            html = render_html(markdown, f"Model card: {model}")
            stored = registry.log_card(facts.champion.run_id, markdown, html)
        return Output(
            markdown,
            metadata={
                "card": MetadataValue.md(markdown),
                "champion_version": facts.champion.version if facts.champion else "none",
                "stored_at": stored,
            },
        )

    return [model_card]
