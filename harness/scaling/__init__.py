"""Scaling curves: fits, the classifier and the metric-artifact check (see ``classify`` for the rules)."""

from harness.scaling.chance import known_chance, metric_info
from harness.scaling.classify import LABELS, Artifact, Classification, Curve, Rules, classify, metric_artifacts

__all__ = ["LABELS", "Artifact", "Classification", "Curve", "Rules", "classify", "known_chance", "metric_artifacts",
           "metric_info"]
