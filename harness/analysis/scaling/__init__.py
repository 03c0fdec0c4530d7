"""Scaling curves: fits, the classifier and the metric-artifact check (see ``classify`` for the rules)."""

from harness.analysis.scaling.chance import known_chance, metric_info
from harness.analysis.scaling.classifier import (
                                                 LABELS,
                                                 Artifact,
                                                 Classification,
                                                 Curve,
                                                 Rules,
                                                 classify,
                                                 display_name,
                                                 metric_artifacts,
                                                 size_means,
)

__all__ = ["LABELS", "Artifact", "Classification", "Curve", "Rules", "classify", "display_name", "known_chance",
           "metric_artifacts", "metric_info", "size_means"]
