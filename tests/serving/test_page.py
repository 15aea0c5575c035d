"""The search page ``semsearch serve`` answers ``/`` with, in a real browser: headless Chromium
(Debian's chromium and chromium-driver) driven by Selenium against a real server process. A
Chinese query and its highlights, the type and path filters, widening a hit in place, hostile
file names and passages kept as text, the API key asked for and never put in a URL, and a
phone's width. Skipped where the browser, its driver or selenium is missing. Every wait is on a
condition (WebDriverWait), never a fixed sleep."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from browsers import chromium, missing, requests  # noqa: E402
from servers import Server, start, stop  # noqa: E402

import semsearch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "semsearch" / "serving" / "static"
KEY = "page-key-for-tests-5d1e9"
HOSTILE = '<img src=x onerror="window.pwned=1">.md'  # a file name that is HTML
REVERSED = "rtl_\u202egnp.md"  # a right-to-left override: shown raw, the name reads rtl_dm.png
# a document whose second and third chunks both match 榴莲: widening the first hit takes in the second
STALL = """# 水果摊

街角的水果摊开了十几年，摊主每天清晨去批发市场进货，摆好苹果、香蕉和橙子，再把价签一张张写好，招呼路过的行人。

## 气味

榴莲的气味很浓，有人喜欢榴莲，也有人远远躲开榴莲。摊主把榴莲放在最外面的筐里，免得榴莲的气味盖过别的水果。

## 价格

今年的收成好，价钱比去年便宜一些，常来的老顾客买两个还送一把香蕉，榴莲也常常一早就卖完了。

## 收摊

傍晚收摊的时候，摊主把剩下的水果搬回店里，扫干净地面，锁好卷帘门，骑车回家吃饭。
"""
WAIT = 90  # seconds a condition may take on a loaded machine; met conditions return at once

Browser = Callable[..., Any]


@pytest.fixture(scope="module")
def browsers_here() -> None:
    if why := missing():
        pytest.skip(why)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, Path]:
    """sample_docs, a hostile file, a name and a heading with a bidi override, and a document
    whose hits neighbour each other, in small chunks (so a document has many to widen over)."""
    work = tmp_path_factory.mktemp("page")
    root = work / "root"
    shutil.copytree(ROOT / "sample_docs", root / "docs")
    hostile = '彩虹糖 <script>window.pwned=2</script><img src=x onerror="window.pwned=3"> 😀😀彩虹糖。'
    (root / "docs" / HOSTILE).write_text(hostile, encoding="utf-8")
    reversed_text = "# 标题\u202e反转\n\n这个文件的名字里有一个反转字符\u202e，石榴放在第二行。\n"
    (root / "docs" / REVERSED).write_text(reversed_text, encoding="utf-8")
    (root / "docs" / "水果摊.md").write_text(STALL, encoding="utf-8")
    chunking = semsearch.ChunkSettings(chunk_tokens=64, overlap_tokens=8)
    with semsearch.open_index(work / "kb", model=str(tiny_model), device="cpu", chunking=chunking) as index:
        index.ingest([root / "docs" / "bicycle_history.txt"])
        # the chunks after it get ids past 2**53, as a Milvus index's 63-bit ids are: a JavaScript
        # number would round them, and widening would ask for another chunk
        with sqlite3.connect(index.data_folder / "semsearch.db") as db:
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'chunks'", (2**60,))
        index.ingest([root / "docs"])
    return work / "kb", root


@pytest.fixture(scope="module")
def server(browsers_here: None, built: tuple[Path, Path]) -> Iterator[Server]:
    index, root = built
    # a reranker that cannot load (no such folder): left out at start, so the page offers none
    running = start(index, root, index.parent / "server.log", "--rerank-model", str(index.parent / "no-reranker"))
    yield running
    stop(running)


@pytest.fixture(scope="module")
def keyed(browsers_here: None, built: tuple[Path, Path]) -> Iterator[Server]:
    index, root = built
    running = start(index, root, index.parent / "keyed.log", env={"SEMSEARCH_API_KEY": KEY})
    yield running
    stop(running)


@pytest.fixture
def browser(browsers_here: None, tmp_path: Path) -> Iterator[Browser]:
    """Opens Chromium windows (width, height) with fresh profiles; quits them all afterwards."""
    opened: list[Any] = []

    def open_window(width: int = 1280, height: int = 900) -> Any:
        driver = chromium(tmp_path / f"profile-{len(opened)}", width, height)
        opened.append(driver)
        return driver

    yield open_window
    for driver in opened:
        driver.quit()


def until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition, message=f"waited {WAIT} s for {what}")


def by_id(driver: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def opened(driver: Any, server: Server) -> Any:
    """The page, loaded, with what the index holds shown (so /info answered)."""
    driver.get(server.url + "/")
    until(driver, lambda d: by_id(d, "index-counts").text, "the index's counts")
    return driver


def fill(driver: Any, name: str, value: str) -> None:
    field = by_id(driver, name)
    field.clear()
    if value:
        field.send_keys(value)


def search(driver: Any, query: str, mode: str = "lexical", types: str = "", path: str = "") -> list[dict[str, Any]]:
    """Search as a user does (type, pick, click) and the hits shown once the answer is in."""
    fill(driver, "query", query)
    css(driver, f"#mode-{mode} + span")[0].click()  # the radio's visible label
    fill(driver, "types", types)
    fill(driver, "path", path)
    # forget the last answer, so what is waited for next is this one's
    forget = "document.getElementById('status').textContent = ''; document.getElementById('error').hidden = true"
    driver.execute_script(forget)
    by_id(driver, "search-button").click()
    until(driver, lambda d: by_id(d, "status").text or by_id(d, "error").is_displayed(), "the answer")
    return hits(driver)


def hits(driver: Any) -> list[dict[str, Any]]:
    script = """
        return Array.from(document.querySelectorAll('#results .hit')).map((hit) => ({
            source: hit.querySelector('.source').title,
            file: hit.querySelector('.file').textContent,
            text: hit.querySelector('.passage').textContent,
            marks: Array.from(hit.querySelectorAll('.passage mark')).map((m) => m.textContent),
            note: hit.querySelector('.widened').textContent,
        }));
    """
    return list(driver.execute_script(script))


@pytest.mark.slow
def test_a_chinese_query_shows_its_document_with_the_terms_highlighted(server: Server, browser: Browser) -> None:
    driver = opened(browser(), server)
    assert by_id(driver, "index-counts").text.startswith("15 documents")
    assert css(driver, 'footer a[href="/docs"]') and by_id(driver, "version").text == semsearch.__version__
    assert not by_id(driver, "rerank-field").is_displayed()  # its one reranker cannot load
    found = search(driver, "大熊猫", mode="lexical")
    assert found and Path(found[0]["source"]).name == "大熊猫.md" and found[0]["file"] == "大熊猫.md"
    assert found[0]["marks"] and all("熊猫" in mark for mark in found[0]["marks"])
    assert "passage" in by_id(driver, "status").text and not by_id(driver, "error").is_displayed()
    fused = search(driver, "大熊猫", mode="hybrid")
    assert any(Path(h["source"]).name == "大熊猫.md" and h["marks"] for h in fused)


@pytest.mark.slow
def test_type_and_path_filters_change_the_results(server: Server, browser: Browser) -> None:
    driver = opened(browser(), server)
    every = {Path(h["source"]).suffix for h in search(driver, "中国", mode="lexical")}
    assert {".md", ".txt"} <= every
    texts = search(driver, "中国", mode="lexical", types="txt")
    assert texts and all(h["source"].endswith(".txt") for h in texts)
    science = search(driver, "中国", mode="lexical", path="docs/science")  # from the server's root
    assert science and all("/docs/science/" in h["source"] for h in science)
    assert search(driver, "中国", mode="lexical", types="pdf") == []
    assert "No passages found" in by_id(driver, "status").text and "type filter 'pdf'" in by_id(driver, "status").text
    search(driver, "中国", mode="lexical", types="p!f")  # refused by the API: one line in the page
    error = by_id(driver, "error")
    assert error.is_displayed() and "types" in error.text and "\n" not in error.text


@pytest.mark.slow
def test_a_click_on_a_hit_widens_its_passage_in_place(server: Server, browser: Browser) -> None:
    driver = opened(browser(), server)
    before = search(driver, "大熊猫", mode="lexical")
    (first,) = server.post("/search", {"query": "大熊猫", "k": 1, "mode": "lexical"}).json()["results"][0]["hits"]
    assert first["chunk_id"] > 2**53  # past what a JavaScript number holds exactly
    css(driver, "#results .hit .passage")[0].click()
    until(driver, lambda d: hits(d)[0]["note"] == "1 chunk either side", "the first widening")
    once = hits(driver)
    assert before[0]["text"] in once[0]["text"] and len(once[0]["text"]) > len(before[0]["text"])
    assert once[0]["marks"] and once[1:] == before[1:]  # the others untouched
    css(driver, "#results .hit .widen")[0].click()
    until(driver, lambda d: hits(d)[0]["note"] == "2 chunks either side", "the second widening")
    twice = hits(driver)
    assert once[0]["text"] in twice[0]["text"] and len(twice[0]["text"]) > len(once[0]["text"])


@pytest.mark.slow
def test_html_in_names_and_passages_stays_text(server: Server, browser: Browser) -> None:
    driver = opened(browser(), server)
    (hit,) = search(driver, "彩虹糖", mode="lexical")
    assert hit["file"] == HOSTILE and "<script>window.pwned=2</script>" in hit["text"]
    # 彩虹糖 is two terms, 彩虹 and 糖; the second time after two emoji, which are two UTF-16 units
    # each in JavaScript: the spans count code points, as Python does
    assert hit["marks"] == ["彩虹", "糖", "彩虹", "糖"]
    assert driver.execute_script("return window.pwned") is None
    assert css(driver, "#results img, #results script") == []


@pytest.mark.slow
def test_more_context_keeps_the_hits_label_and_folds_the_hits_it_takes_in(server: Server, browser: Browser) -> None:
    driver = opened(browser(), server)
    first, second = search(driver, "榴莲", mode="lexical")
    assert first["file"] == second["file"] == "水果摊.md"
    labels = "return Array.from(document.querySelectorAll('#results .hit .meta'), (m) => m.textContent)"
    before = driver.execute_script(labels)
    assert before[0].startswith("line 5") and "气味" in before[0]
    css(driver, "#results .hit .widen")[0].click()
    until(driver, lambda d: hits(d)[0]["note"] == "1 chunk either side", "the widening")
    widened = hits(driver)[0]
    # the passage now starts at the document's first line, under another heading: the hit still
    # says where it is, not where its passage begins
    assert widened["text"].startswith("# 水果摊") and driver.execute_script(labels)[0] == before[0]
    # the second hit's chunk is in the widened passage: folded away, and said so
    assert second["text"] in widened["text"]
    shown = [hit.is_displayed() for hit in css(driver, "#results .hit")]
    assert shown == [True, False]
    assert css(driver, "#results .hit .folded")[0].text == "Takes in hit 2"


@pytest.mark.slow
def test_bidi_controls_in_names_and_headings_show_as_escapes(server: Server, browser: Browser) -> None:
    # as the terminal shows them (cli/render.py): a name never reads as another
    driver = opened(browser(), server)
    (hit,) = search(driver, "石榴", mode="lexical")
    assert hit["file"] == "rtl_\\u202egnp.md" and hit["source"].endswith("/rtl_\\u202egnp.md")
    heading = driver.execute_script("return document.querySelector('#results .hit .heading').textContent")
    assert heading == "标题\\u202e反转"
    assert "反转字符\\u202e，" in hit["text"] and all("\u202e" not in hit[key] for key in ("file", "source", "text"))


@pytest.mark.slow
def test_the_page_asks_for_the_key_and_never_puts_it_in_a_url(keyed: Server, browser: Browser) -> None:
    driver = browser()
    driver.get(keyed.url + "/")
    until(driver, lambda d: by_id(d, "key-form").is_displayed(), "the key to be asked for")
    fill(driver, "key-input", "not-the-key")
    css(driver, "#key-form button")[0].click()
    until(driver, lambda d: "refused" in by_id(d, "key-message").text, "a wrong key to be refused")
    fill(driver, "key-input", KEY)
    css(driver, "#key-form button")[0].click()
    until(driver, lambda d: by_id(d, "index-counts").text, "the index's counts, with the key")
    assert not by_id(driver, "key-form").is_displayed()
    found = search(driver, "大熊猫", mode="lexical")
    assert found and Path(found[0]["source"]).name == "大熊猫.md"
    css(driver, "#results .hit .widen")[0].click()
    until(driver, lambda d: hits(d)[0]["note"], "a widening, with the key")
    assert driver.execute_script("return sessionStorage.getItem('semsearch.key')") == KEY
    sent = requests(driver)
    assert sent and all(KEY not in r["url"] for r in sent) and KEY not in driver.current_url
    history = driver.execute_script("return [location.href, document.referrer, history.length]")
    assert KEY not in str(history)
    keyed_calls = [r for r in sent if r["url"].endswith(("/search", "/passage", "/info"))]
    headers = [{k.lower(): v for k, v in r["headers"].items()} for r in keyed_calls]
    assert {"/search", "/passage"} <= {"/" + r["url"].rsplit("/", 1)[1] for r in keyed_calls}
    assert any(h.get("authorization") == f"Bearer {KEY}" for h in headers)


@pytest.mark.slow
def test_at_a_phones_width_nothing_scrolls_sideways(server: Server, browser: Browser) -> None:
    driver = opened(browser(390, 844), server)
    assert driver.execute_script("return window.innerWidth") == 390
    found = search(driver, "大熊猫", mode="lexical")
    assert found
    css(driver, "#results .hit .widen")[0].click()
    until(driver, lambda d: hits(d)[0]["note"], "a widening")
    width = "return [document.documentElement.scrollWidth, window.innerWidth]"
    scroll, inner = driver.execute_script(width)
    assert scroll <= inner == 390
    # every control and hit lies within the screen
    right = """return Math.max(...Array.from(document.querySelectorAll('input, select, button, .hit'),
                                             (e) => e.getBoundingClientRect().right))"""
    assert driver.execute_script(right) <= 390


def test_the_page_ships_in_the_package_and_writes_data_as_text() -> None:
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    patterns = declared["package-data"]["semsearch.serving"]
    files = sorted(p for p in STATIC.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"index.html", "page.css", "page.js"}
    assert all(any(p.match(pattern) for pattern in patterns) for p in files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), path  # nothing from a CDN
    script = (STATIC / "page.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)
