"""The installed distribution's version (one source of truth: ``pyproject.toml``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scaling-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
