"""The package's metadata is in pyproject.toml; this adds one build step: docs/reports.md ships inside the package
(convoscope/_docs/reports.md), where the web pages read each column's meaning from (reports/meanings.py), so the
documentation stays the one source of those definitions. An editable install reads the checkout's docs/ instead."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_DOCS = ("reports.md",)


class BuildWithDocs(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "convoscope" / "_docs"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED_DOCS:
            shutil.copyfile(Path(__file__).parent / "docs" / name, target / name)


setup(cmdclass={"build_py": BuildWithDocs})
