"""The installed ``semsearch`` command in real subprocesses, on sample_docs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from children import child_environment
from typer.testing import CliRunner

from semsearch.cli import app

pytestmark = pytest.mark.slow  # each test runs the semsearch command in a new process

SEMSEARCH = Path(sys.executable).parent / "semsearch"
JSON_KEYS = {
    "files_added", "files_updated", "files_unchanged", "files_removed", "files_reused",
    "files_skipped", "chunks_embedded", "chunks_total", "seconds", "skipped",
    "model_load_seconds", "embedding_seconds", "chunks_per_second",
}  # fmt: skip


def run(*args: str | Path, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None):
    environment = child_environment()
    environment.update(HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.run(
        [str(SEMSEARCH), *map(str, args)],
        cwd=cwd, input=stdin, capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip


def assert_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, Path]:
    """(work folder, index) after one ingest of a copy of sample_docs through the CLI."""
    if not SEMSEARCH.exists():
        pytest.skip("the semsearch console script is not installed")
    work = tmp_path_factory.mktemp("cli")
    shutil.copytree(Path(__file__).resolve().parents[2] / "sample_docs", work / "docs")
    result = run("ingest", "docs", "--model", tiny_model, cwd=work)
    assert result.returncode == 0, result.stderr
    assert "12 added, 0 updated, 0 unchanged, 0 removed, 0 skipped" in result.stdout
    assert "Traceback" not in result.stderr
    return work, work / ".semsearch"


@pytest.fixture
def own_copy(built: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the built index, for tests that change it."""
    return Path(shutil.copytree(built[1], tmp_path / "index"))


def test_ingest_twice_embeds_nothing(built: tuple[Path, Path]) -> None:
    work, _ = built
    result = run("ingest", "docs", "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= JSON_KEYS
    assert (report["files_unchanged"], report["chunks_embedded"], report["files_added"]) == (12, 0, 0)
    assert report["chunks_total"] > 12
    # one file, named by a relative path: it alone is looked at (this once removed the other 11)
    one = json.loads(run("ingest", "docs/大熊猫.md", "--json", cwd=work).stdout)
    assert (one["files_unchanged"], one["files_removed"], one["chunks_total"]) == (1, 0, report["chunks_total"])


def test_query_text(built: tuple[Path, Path]) -> None:
    work, _ = built
    result = run("query", "你是谁？", "-k", "3", cwd=work)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith(" 1. ") and "docs/" in lines[0] and ":" in lines[0]


def test_query_json(built: tuple[Path, Path], tiny_model: Path) -> None:
    work, _ = built
    result = run("query", "大熊猫", "--json", "-k", "4", cwd=work, env={"SEMSEARCH_INDEX": ".semsearch"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["query"] == "大熊猫" and answer["model"] == str(tiny_model)
    assert [r["rank"] for r in answer["results"]] == [1, 2, 3, 4]
    first = answer["results"][0]
    fields = {"rank", "score", "source", "line", "start", "end", "chunk_id", "text", "matched", "highlights"}
    fields |= {"page", "heading", "chunk_ids", "reranked", "first_score"}
    assert set(first) == fields
    assert first["matched"] == "dense" and first["highlights"] == []
    source_text = Path(first["source"]).read_bytes()
    from semsearch.documents.reading import decode

    assert decode(source_text)[0][first["start"] : first["end"]] == first["text"]


def test_queries_from_stdin_as_json_lines(built: tuple[Path, Path]) -> None:
    work, _ = built
    result = run("query", "--json", "-k", "2", cwd=work, stdin="你是谁？\n\nhow to bake bread\n红烧肉\n")
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["query"] for a in answers] == ["你是谁？", "how to bake bread", "红烧肉"]
    assert all(len(a["results"]) == 2 for a in answers)


def test_queries_from_a_file(built: tuple[Path, Path]) -> None:
    work, _ = built
    (work / "queries.txt").write_text("长城\n茶\n", encoding="utf-8")
    result = run("query", "--file", "queries.txt", "-k", "1", cwd=work)
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert headers == ["# 长城", "# 茶"] and " 1. " in result.stdout


def test_info(built: tuple[Path, Path], tiny_model: Path) -> None:
    work, index = built
    result = run("info", "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["path"] == str(index.resolve()) and details["model"] == str(tiny_model)
    assert (details["dimension"], details["documents"], details["index_device"]) == (96, 12, "cpu")
    assert details["chunks"] > 12 and details["size_bytes"] > 0
    text = run("info", cwd=work)
    assert text.returncode == 0 and "documents: 12" in text.stdout


def test_remove(built: tuple[Path, Path], own_copy: Path) -> None:
    work, _ = built
    result = run("remove", "docs/science", "--index", own_copy, "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files_removed"] == 3
    info = json.loads(run("info", "--index", own_copy, "--json", cwd=work).stdout)
    assert info["documents"] == 9
    assert_error(run("remove", "docs/science", "--index", own_copy, cwd=work), "Nothing indexed")


def test_changed_and_deleted_files(built: tuple[Path, Path], own_copy: Path, tmp_path: Path) -> None:
    work, _ = built
    docs = Path(shutil.copytree(work / "docs", tmp_path / "docs2"))
    first = json.loads(run("ingest", docs, "--index", own_copy, "--json", cwd=work).stdout)
    assert first["files_added"] == 12  # a new folder: new documents
    (docs / "睡眠与健康.txt").write_text("改写后的内容。", encoding="utf-8")
    (docs / "大熊猫.md").unlink()
    report = json.loads(run("ingest", docs, "--index", own_copy, "--json", cwd=work).stdout)
    assert (report["files_updated"], report["files_removed"], report["chunks_embedded"]) == (1, 1, 1)


def test_shards_through_the_cli(built: tuple[Path, Path], tiny_model: Path, tmp_path: Path) -> None:
    work, _ = built
    index = tmp_path / "sharded"
    reports = [
        json.loads(
            run(
                "ingest", "docs", "--index", index, "--model", tiny_model, "--shard", f"{n}/2", "--json", cwd=work
            ).stdout
        )
        for n in (1, 2)
    ]
    assert sum(r["files_added"] for r in reports) == 12 and all(r["files_added"] for r in reports)
    bad = run("ingest", "docs", "--index", index, "--shard", "3/2", cwd=work)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: A shard is I/N")
    assert run("ingest", "--reindex", "--index", index, "--shard", "1/2", cwd=work).returncode == 2


# -- errors: exit 1, one line, no traceback ------------------------------------------------


def test_no_index(tmp_path: Path) -> None:
    assert_error(run("query", "你好", cwd=tmp_path), "No index at", "semsearch ingest")
    assert_error(run("info", cwd=tmp_path), "No index at")
    assert_error(run("remove", "x", cwd=tmp_path), "No index at")


def test_empty_folder_and_missing_path(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_error(run("ingest", "empty", "--model", tiny_model, cwd=tmp_path), "No files of a type semsearch reads")
    assert_error(run("ingest", "missing", "--model", tiny_model, cwd=tmp_path), "No such file or folder", "missing")


def test_bad_model(tmp_path: Path, docs: Path) -> None:
    assert_error(run("ingest", docs, "--model", "./no-model-here", cwd=tmp_path), "no-model-here", "--model")
    result = run("ingest", docs, "--model", "no-such-org/no-such-model", cwd=tmp_path)
    assert_error(result, "Cannot load model 'no-such-org/no-such-model'", "--model")


def test_other_model_on_an_existing_index(built: tuple[Path, Path], minilm_model: Path) -> None:
    work, _ = built
    result = run("query", "hello", "--model", minilm_model, cwd=work)
    assert_error(result, "was built with model", str(minilm_model))


def test_empty_query(built: tuple[Path, Path]) -> None:
    assert_error(run("query", "   ", cwd=built[0]), "empty")


def test_cuda_without_a_gpu(built: tuple[Path, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert_error(run("query", "你好", "--device", "cuda", cwd=built[0]), "CUDA is not available")


def test_chunk_size_over_the_model_limit(tmp_path: Path, docs: Path, tiny_model: Path) -> None:
    result = run("ingest", docs, "--model", tiny_model, "--chunk-tokens", "600", cwd=tmp_path)
    assert_error(result, "--chunk-tokens must be between 1 and 510")
    assert not (tmp_path / ".semsearch").exists()  # nothing written


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (["query", "x", "-k", "0"], ["ingest"], ["query", "x", "--no-such-flag"], ["frobnicate"]):
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result)
        assert "Traceback" not in result.stderr


# -- in-process, fast ----------------------------------------------------------------------


def test_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "query", "info", "remove"):
        assert command in result.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("semsearch ")


def test_help_does_not_import_torch() -> None:
    code = "import sys; from semsearch.cli import app; print('torch' in sys.modules, 'faiss' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_info_check_and_repair(built: tuple[Path, Path], own_copy: Path) -> None:
    work, _ = built
    result = run("info", "--check", "--index", own_copy, "--json", cwd=work)
    assert result.returncode == 0 and json.loads(result.stdout)["ok"] is True
    for path in own_copy.glob("vectors-*.faiss"):
        path.unlink()
    # the vector file is a cache of the stored vectors: one lost (or left behind by a killed
    # write) is brought up to date by the check, as any reader would, and said so
    behind = run("info", "--check", "--index", own_copy, cwd=work)
    assert behind.returncode == 0 and "no vector file" in behind.stdout, behind.stdout
    assert list(own_copy.glob("vectors-*.faiss"))
    repaired = run("repair", "--index", own_copy, "--json", cwd=work)
    assert repaired.returncode == 0 and json.loads(repaired.stdout)["ok"] is True
    assert run("info", "--check", "--index", own_copy, cwd=work).returncode == 0


# -- bad input, damage, reindex --------------------------------------------------------------


def test_bad_input_is_reported_per_file_and_the_run_goes_on(
    built: tuple[Path, Path], tmp_path: Path, tiny_model: Path
) -> None:
    work, _ = built
    docs = Path(shutil.copytree(work / "docs", tmp_path / "docs"))
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02PNG" * 100)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_text(" \n\t\n", encoding="utf-8")
    (docs / "bad.txt").write_bytes(b"abc\x80\xff" * 50)
    (docs / "utf16.txt").write_bytes("这是一个带字节顺序标记的文件。".encode("utf-16"))
    (docs / "big5.txt").write_bytes("這是一份繁體中文的文件，講述台灣的歷史與文化。".encode("big5"))
    (docs / "large.txt").write_text("长" * 400_000, encoding="utf-8")  # 1.2 MB
    (docs / "loop").symlink_to(docs)
    (docs / "drafts").mkdir()
    (docs / "drafts" / "草稿.md").write_text("不要索引这个草稿。", encoding="utf-8")
    (docs / "notes.log").write_text("log", encoding="utf-8")
    os.mkfifo(docs / "pipe.txt")
    index = tmp_path / "index"
    result = run(
        "ingest", docs, "--index", index, "--model", tiny_model, "--json",
        "--exclude", "drafts/", "--exclude", "*.log", "--max-file-mb", "1", cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert reasons == {
        "binary.txt": "binary file",
        "empty.txt": "empty or only white space",
        "blank.md": "empty or only white space",
        "bad.txt": "not valid UTF-8, UTF-16, GB18030/GBK or Big5 text",
        "large.txt": "larger than the 1 MB limit (size 1.2 MB)",
        "loop": "symbolic-link loop",
        "pipe.txt": "not a regular file",
    }
    assert report["files_added"] == 14 and report["files_skipped"] == 7  # 12 + utf16 + big5
    assert not any("草稿" in s["path"] or "notes.log" in s["path"] for s in report["skipped"])
    hits = json.loads(run("query", "繁體中文 台灣", "--index", index, "--json", "-k", "50", cwd=work).stdout)
    assert any(h["source"].endswith("big5.txt") for h in hits["results"])
    assert not any("草稿" in h["source"] for h in hits["results"])
    text = run("ingest", docs, "--index", index, "--exclude", "drafts/", "--exclude", "*.log", cwd=work)
    assert "skipped" in text.stderr and "pipe.txt: not a regular file" in text.stderr


def test_damaged_files_give_one_line_naming_them(built: tuple[Path, Path], own_copy: Path) -> None:
    work, _ = built
    (vectors,) = own_copy.glob("vectors-*.faiss")
    vectors.write_bytes(vectors.read_bytes()[:64])
    assert_error(run("query", "熊猫", "--index", own_copy, cwd=work), vectors.name, "semsearch repair")
    assert run("repair", "--index", own_copy, cwd=work).returncode == 0
    database = own_copy / "semsearch.db"
    database.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    for args in (("query", "熊猫"), ("info",), ("info", "--check"), ("repair",), ("ingest", "docs")):
        assert_error(run(*args, "--index", own_copy, cwd=work), "semsearch.db")


def test_a_migration_into_itself_is_refused_in_one_line(built: tuple[Path, Path], own_copy: Path) -> None:
    work = own_copy.parent
    for target in ("index", "index/", str(own_copy)):
        result = run("migrate", "index", target, cwd=work)
        assert_error(result, "Cannot migrate index into itself")
        assert result.stdout == ""
    assert json.loads(run("info", "--index", own_copy, "--json", cwd=work).stdout)["documents"] == 12


def test_a_long_query_is_truncated_with_a_note(built: tuple[Path, Path]) -> None:
    result = run("query", "熊猫" * 400, "-k", "1", cwd=built[0])
    assert result.returncode == 0
    assert "Note: The query is 800 tokens; the model reads only the first 510" in result.stderr


def test_reindex_re_embeds_into_a_new_copy(built: tuple[Path, Path], own_copy: Path, minilm_model: Path) -> None:
    work, _ = built
    refused = run("ingest", "docs", "--index", own_copy, "--model", minilm_model, cwd=work)
    assert_error(refused, "was built with model", "--reindex")
    result = run("ingest", "--reindex", "--index", own_copy, "--model", minilm_model, "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files_added"] == 12 and report["chunks_embedded"] == report["chunks_total"]
    info = json.loads(run("info", "--index", own_copy, "--json", cwd=work).stdout)
    assert info["model"] == str(minilm_model) and info["dimension"] == 384 and info["documents"] == 12
    assert run("info", "--check", "--index", own_copy, cwd=work).returncode == 0


# -- first contact: help, skipped files, ignore files, small output ------------------------------


@pytest.mark.parametrize("command", [[], ["ingest"], ["query"], ["info"], ["repair"], ["remove"], ["eval"], ["serve"]])
def test_help_reads_like_a_well_made_cli(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], prog_name="semsearch", terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    for python_type in ("<bool>", "<str>", "<int", "<float>", "<path>", "list[", "Path]", "--k "):
        assert python_type not in text, (python_type, text)
    for flag in ("--help", "--json", "--wait", "--fp32", "--debug", "--reindex", "--no-ignore", "--verbose"):
        for line in text.splitlines():
            if line.strip().startswith(flag + " ") or line.strip() == flag:
                assert not line.strip()[len(flag) :].lstrip().startswith("<"), line  # a flag takes no value
    if command == ["query"]:
        assert "-k N" in text and "--mode <dense|lexical|hybrid>" in text and "[default: dense]" in text
        assert "--index DIR" in text and "--path GLOB" in text and "Usage: semsearch query [OPTIONS] [TEXT]" in text
    if command == ["ingest"]:
        assert (
            "--index-type <auto|flat|ivf|hnsw|diskann|ivf_sq8|ivf_pq>" in text
            and "Usage: semsearch ingest [OPTIONS] [PATH]..." in text
        )


def test_a_new_user_s_folder(built: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = built
    folder = tmp_path / "repo"
    shutil.copytree(work / "docs", folder / "docs")
    (folder / ".gitignore").write_text("secret.txt\n*.egg-info/\n", encoding="utf-8")
    (folder / "secret.txt").write_text("密码是一二三四。", encoding="utf-8")
    (folder / "pkg.egg-info").mkdir()
    (folder / "pkg.egg-info" / "SOURCES.txt").write_text("docs/大熊猫.md", encoding="utf-8")
    for n in range(5):
        (folder / f"tool{n}.py").write_text("print('x')", encoding="utf-8")
    (folder / "data.json").write_text("{}", encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    model = json.loads(run("info", "--json", cwd=work).stdout)["model"]
    index = tmp_path / "index"
    result = run("ingest", folder, "--index", index, "--model", model, cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"skipped {folder / 'empty.txt'}: empty or only white space",  # a file meant to be read: its own line
        "skipped 6 files of types semsearch does not read (.py 5, .json 1); --verbose lists them",
    ]
    summary = result.stdout.strip()
    assert summary.startswith("12 added, 0 updated, 0 unchanged, 0 removed, 7 skipped; ")
    assert "chunks embedded in" in summary and "in the index" in summary
    # the embedding rate apart from the model's loading (issue 23: the rate counted the load)
    assert re.search(r"\d+ chunks embedded in [\d.]+ s \(model loaded in [\d.]+ s, then [\d,.]+ chunks/s\); ", summary)
    verbose = run("ingest", folder, "--index", index, "--verbose", cwd=work)
    assert len(verbose.stderr.splitlines()) == 7 and f"skipped {folder / 'tool0.py'}: unsupported" in verbose.stderr
    assert "0 chunks embedded in" in verbose.stdout and "chunks/s" not in verbose.stdout
    sources = {
        h["source"]
        for h in json.loads(run("query", "密码", "--index", index, "--json", "-k", "50", cwd=work).stdout)["results"]
    }
    assert not any("secret" in s or "egg-info" in s for s in sources)  # git-ignored files stay out
    unignored = json.loads(run("ingest", folder, "--index", index, "--no-ignore", "--json", cwd=work).stdout)
    assert unignored["files_added"] == 2  # secret.txt and SOURCES.txt
    assert {s["kind"] for s in unignored["skipped"]} == {"unsupported", "empty"} and len(unignored["skipped"]) == 7
    again = run("ingest", folder, "--index", index, cwd=work)  # ignore files honoured again: those two go
    assert "2 removed (2 now excluded)" in again.stdout


def test_small_output_says_things_right(built: tuple[Path, Path], own_copy: Path) -> None:
    work, _ = built
    info = run("info", "--index", own_copy, cwd=work).stdout
    assert "None" not in info and "revision: - (a local model folder)" in info
    removed = run("remove", "docs/大熊猫.md", "--index", own_copy, cwd=work)
    assert removed.stdout.startswith("removed 1 document, ") and "chunks" in removed.stdout
    for flags, named in (
        (["--type", "foo"], "the type filter 'foo'"),
        (["--path", "nowhere/"], "the path filter 'nowhere/'"),
    ):
        found = run("query", "熊猫", "--index", own_copy, *flags, cwd=work)
        assert found.returncode == 0 and found.stdout.strip() == "No results."
        assert f"Note: No indexed document matches {named}" in found.stderr


def test_a_passage_does_not_repeat_the_heading_shown_above_it(built: tuple[Path, Path]) -> None:
    work, _ = built
    result = run("query", "大熊猫 竹子", "--mode", "lexical", "--type", "md", "-k", "10", cwd=work)
    lines = result.stdout.splitlines()
    shown = [(lines[i], lines[i + 1].strip()) for i in range(0, len(lines) - 1, 2) if "§" in lines[i]]
    assert shown
    for place, passage in shown:
        title = place.split("§", 1)[1].split("[")[0].split(">")[-1].strip()
        assert not passage.lstrip("# ").startswith(title), (place, passage)


def test_names_and_passages_reach_the_terminal_escaped_and_json_stays_exact(tmp_path: Path, tiny_model: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    hostile = "x\x1b]0;PWNED\x07\x1b[2J\n 1. 9.9999  forged.txt:1\u202e.md"
    (docs / hostile).write_text(
        "# 标题\x1b[31m红\n\n熊猫吃竹子。\x1b]8;;http://evil\x07链接\x1b]8;;\x07", encoding="utf-8"
    )
    runner = CliRunner()
    kb = str(tmp_path / "kb")
    assert runner.invoke(app, ["ingest", str(docs), "--index", kb, "--model", str(tiny_model)]).exit_code == 0
    for extra in ([], ["--context", "1"]):
        shown = runner.invoke(app, ["query", "熊猫", "--index", kb, "--mode", "lexical", *extra]).output
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown, shown
        assert "\\x1b]0;PWNED\\x07" in shown and "\\x0a 1. 9.9999  forged.txt:1\\u202e.md" in shown
        assert len([line for line in shown.splitlines() if line.lstrip().startswith("1.")]) == 1  # no forged line
    exact = json.loads(runner.invoke(app, ["query", "熊猫", "--index", kb, "--mode", "lexical", "--json"]).output)
    assert exact["results"][0]["source"] == str(docs / hostile) and "\x1b[31m" in exact["results"][0]["text"]


def test_a_name_that_is_not_utf8_gives_valid_json_and_an_escaped_line(tmp_path: Path, tiny_model: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    raw = os.fsencode(docs) + b"/bad\xff\xfename.txt"
    with open(raw, "wb") as handle:
        handle.write("熊猫吃竹子。".encode())
    with open(os.fsencode(docs) + b"/empty\xff.txt", "wb"):
        pass  # skipped: its name is in the report
    index = tmp_path / "index"
    result = subprocess.run(
        [str(SEMSEARCH), "ingest", str(docs), "--index", str(index), "--model", str(tiny_model), "--json"],
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.decode("utf-8"))  # valid UTF-8, whatever the names
    assert [os.fsencode(s["path"]) for s in report["skipped"]] == [os.fsencode(docs) + b"/empty\xff.txt"]
    found = run("query", "熊猫", "--index", index, "--mode", "lexical", cwd=tmp_path)
    assert found.returncode == 0 and "bad\\xff\\xfename.txt" in found.stdout
    hits = json.loads(run("query", "熊猫", "--index", index, "--mode", "lexical", "--json", cwd=tmp_path).stdout)
    assert os.fsencode(hits["results"][0]["source"]) == raw


def test_odd_files_in_the_index_folder_get_one_true_line_not_a_hang(built: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = built

    def copy(name: str) -> Path:
        return Path(shutil.copytree(built[1], tmp_path / name))

    fifo = copy("fifo")
    (vectors,) = fifo.glob("vectors-*.faiss")
    vectors.unlink()
    os.mkfifo(vectors)
    for args in (("info",), ("query", "熊猫")):
        assert_error(run(*args, "--index", fifo, cwd=work), vectors.name, "not a regular file")
    checked = run("info", "--check", "--index", fifo, cwd=work)
    assert (
        checked.returncode == 1
        and f"FAIL  vector index readable: {fifo / vectors.name} is not a regular" in checked.stdout
    )
    for kind in ("folder", "pipe"):
        odd = copy(f"lock-{kind}")
        (odd / "write.lock").unlink()
        (odd / "write.lock").mkdir() if kind == "folder" else os.mkfifo(odd / "write.lock")
        assert_error(run("remove", "docs/大熊猫.md", "--index", odd, cwd=work), "write.lock", "delete it")
        assert run("query", "熊猫", "--index", odd, cwd=work).returncode == 0  # readers never need the lock
    empty = copy("empty")
    (empty / "semsearch.db").write_bytes(b"")
    for leftover in empty.glob("semsearch.db-*"):
        leftover.unlink()
    assert_error(run("info", "--index", empty, cwd=work), "semsearch.db", "empty (0 bytes)", "truncated")
    moved = copy("moved")
    (moved / "CURRENT").write_text("data-3\n", encoding="utf-8")
    assert_error(run("query", "熊猫", "--index", moved, cwd=work), "CURRENT", "data-3", "missing")
    piped = copy("current-fifo")
    os.mkfifo(piped / "CURRENT")
    assert_error(run("info", "--index", piped, cwd=work), "CURRENT", "not a regular file")


def test_bad_values_are_refused_in_one_line(built: tuple[Path, Path]) -> None:
    work, _ = built
    assert_error(run("query", "熊猫", "--min-score", "nan", cwd=work), "min_score must be a finite number")
    old = run("query", "熊猫", "--modified-after", "0001-01-01", "--mode", "lexical", cwd=work)
    assert old.returncode == 0 and "熊猫" in old.stdout  # a valid ISO date, however early
