"""The public API: re-exported from ``harness``, each name the same object on every access."""

import importlib

import harness


def test_public_names_resolve_and_stay_the_same_object():
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    first = harness.compare
    importlib.import_module("harness.analysis.comparison")  # importing the module must not rebind the name

    assert harness.compare is first and callable(first) and first.__module__ == "harness.analysis.comparison"
    assert harness.run.__module__ == "harness.runner.driver" and harness.classify.__module__.endswith("classifier")
