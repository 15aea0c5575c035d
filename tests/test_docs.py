"""The docs that derive from the code are up to date: docs/cli.md (from the typer app) and the
README's table of file formats (from the format registry)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gen_docs():  # scripts/gen_docs.py, imported as a module
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_up_to_date() -> None:
    stale = gen_docs().stale()
    assert stale == [], f"stale: {stale}; run python scripts/gen_docs.py"


def test_the_reference_names_every_command_and_search_option() -> None:
    from semsearch.query import Query, Where, options

    reference = gen_docs().cli_markdown()
    for command in ("ingest", "query", "info", "repair", "remove", "eval", "serve"):
        assert f"## `semsearch {command}`" in reference
    for cls in (Query, Where):
        for found, how in options(cls):
            assert all(f"`{flag}" in reference or f" {flag}" in reference for flag in how.names(found.name))


def test_readme_links_resolve() -> None:
    import re

    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_browser_tests_install_a_cjk_font_with_chromium() -> None:
    # without one the page's Chinese shows as boxes in the browser and the screenshots
    fonts = ("fonts-noto-cjk", "fonts-wqy-microhei")
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "apt-get install chromium chromium-driver fonts-noto-cjk" in readme
    assert all(font in readme for font in fonts)
    installs = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "apt-get install" in line]
    assert installs and all("chromium-driver" in line and any(f in line for f in fonts) for line in installs)
