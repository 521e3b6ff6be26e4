"""The wheel carries the folders `swarm init` and `swarm demo` start projects from, copied (never linked) into
swarm/_data/ at build time, so an installed swarm works without this source tree. Metadata is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("engine_repo_template", "examples")
IGNORE = shutil.ignore_patterns("target", ".git", "__pycache__", "*.pyc", ".swarm", ".venv", ".pytest_cache")


class BuildPyWithProjects(build_py):
    """build_py, plus a real copy of each shipped folder (a checkout's editable install reads them in place)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            dest = Path(self.build_lib) / "swarm" / "_data" / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(Path(__file__).resolve().parent / name, dest, ignore=IGNORE, symlinks=False)


setup(cmdclass={"build_py": BuildPyWithProjects})
