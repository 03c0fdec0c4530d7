"""The build maps the checkout's top-level ``tasks/`` and ``configs/`` into the package as ``harness/_data/``:
one copy in the repository, where a user of the checkout edits them; the wheel carries them as package data."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("tasks", "configs")  # top-level folders shipped as harness/_data/<name>


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for name in DATA:
            for src in sorted(Path(name).rglob("*")):
                if src.is_file() and src.suffix in (".yaml", ".yml", ".json", ".jsonl"):
                    dest = Path(self.build_lib, "harness", "_data", src)
                    self.mkpath(str(dest.parent))
                    self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildWithData})
