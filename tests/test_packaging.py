"""The install paths the README documents stay true to pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


def requirements(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[requirement.name] = str(requirement.specifier)
    return found


def test_the_lean_cpu_requirements_are_pyprojects_with_faiss_cpu() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = requirements([d for d in project["dependencies"] if "faiss" not in d])
    lean = requirements((ROOT / "requirements-cpu.txt").read_text(encoding="utf-8").splitlines())
    faiss_cpu = next(Requirement(d) for d in project["dependencies"] if d.startswith("faiss-cpu"))
    assert lean == {**declared, "faiss-cpu": str(faiss_cpu.specifier)}


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "python -m pytest -q"
    assert command in readme and ci.strip().splitlines()[-1] == command


def test_the_version_is_set_in_one_place() -> None:
    from importlib.metadata import version

    from semsearch.config import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("semsearch") == __version__


def test_the_cli_starts_without_the_heavy_modules() -> None:
    # a query through a running server takes under 0.5 s only while the command's own import
    # stays clear of torch, transformers, faiss, the index and the ignore-file matcher
    import subprocess
    import sys

    heavy = ["torch", "transformers", "faiss", "numpy", "semsearch.index", "pathspec", "watchfiles", "fastapi"]
    code = f"import sys, semsearch.cli.app; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == "[]"
