"""Analysis stage: read results (this harness's runs, lm-eval JSON, CSV), label scaling curves, compare runs."""

from harness.analysis.classified import (
                                         Classified,
                                         LabelledCurve,
                                         across_families,
                                         by_family,
                                         by_keyword,
                                         classify_results,
                                         load_classified,
)
from harness.analysis.comparison import Comparison, Difference, LabelPair, compare
from harness.analysis.results import Results, curves, load_results, load_sources, parse_size
from harness.analysis.scaling import LABELS, Artifact, Classification, Curve, Rules, classify, metric_artifacts

__all__ = ["LABELS", "Artifact", "Classification", "Classified", "Comparison", "Curve", "Difference", "LabelPair",
           "LabelledCurve", "Results", "Rules", "across_families", "by_family", "by_keyword", "classify", "classify_results", "compare", "curves", "load_classified",
           "load_results", "load_sources", "metric_artifacts", "parse_size"]
