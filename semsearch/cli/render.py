"""What the commands print for a human (escaped for the terminal) and for scripts (``--json``)."""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections import Counter
from typing import TYPE_CHECKING, Any

import typer

from ..results import UNSUPPORTED, IngestReport, Skipped

if TYPE_CHECKING:
    from ..index import Index
    from ..results import Check, Hit

# control characters (C0 and C1), the bidirectional overrides that reorder a line, and lone
# surrogates (a file name's undecodable bytes): what must never reach a terminal raw
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_IN_LINE = re.compile(f"[{_UNSAFE}\t\n]")
_UNSAFE_IN_TEXT = re.compile(f"[{_UNSAFE}]")


def printable(text: str, lines: bool = False) -> str:
    """``text`` safe to print for a human: control characters (escape sequences, and with
    ``lines`` False also tabs and line breaks, which could forge output lines), bidirectional
    overrides and undecodable bytes written as visible escapes (``\\x1b``, ``\\xff``).
    ``--json`` output is exact instead."""
    return (_UNSAFE_IN_TEXT if lines else _UNSAFE_IN_LINE).sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 in a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_text(data: Any) -> str:
    """``data`` as JSON, valid UTF-8 whatever the file names: a name's undecodable bytes (lone
    surrogates) are written as JSON escapes (``\\udcff``), which read back to the same name."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def print_json(data: Any) -> None:
    typer.echo(json_text(data))


def display(path: str) -> str:
    """A stored (absolute) path as shown: relative to where the user stands when inside it."""
    relative = os.path.relpath(path)
    return printable(path if relative.startswith("..") else relative)


def count(number: int, noun: str) -> str:
    """``1 document``, ``2 documents``, ``1,234 chunks``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def print_notes(idx: Index) -> None:
    for note in idx.notes:
        typer.echo(f"Note: {printable(note)}", err=True)


def print_report(report: IngestReport, as_json: bool, verbose: bool = False, lead: str = "") -> None:
    """An ingest's report: skipped files on stderr, then the summary line after ``lead`` (or
    all of it as JSON)."""
    if as_json:
        print_json(report.to_dict())
        return
    for line in skip_lines(report.skipped, verbose):
        typer.echo(line, err=True)
    reused = f" ({report.files_reused} from identical indexed content)" if report.files_reused else ""
    excluded = f" ({report.files_removed_excluded} now excluded)" if report.files_removed_excluded else ""
    resumed = f", {report.chunks_resumed} more taken from an interrupted run" if report.chunks_resumed else ""
    rate = f"{report.chunks_per_second:,.1f} chunks/s" if report.chunks_per_second else ""
    if report.model_load_seconds >= 0.05:
        converted = (
            f" (converted for OpenVINO in {report.conversion_seconds:.1f} s, once)" if report.conversion_seconds else ""
        )
        loaded = f"model loaded in {report.model_load_seconds:.1f} s{converted}"
        rate = loaded + (f", then {rate}" if rate else "")
    rate = f" ({rate})" if rate else ""
    if verbose and report.engine:
        typer.echo(f"embedding with {report.engine}", err=True)
    typer.echo(
        f"{lead}{report.files_added} added, {report.files_updated} updated{reused}, "
        f"{report.files_unchanged} unchanged, {report.files_removed} removed{excluded}, "
        f"{report.files_skipped} skipped; "
        f"{count(report.chunks_embedded, 'chunk')} embedded in {report.seconds:.1f} s{rate}{resumed}; "
        f"{report.chunks_total:,} in the index"
    )


def skip_lines(skipped: list[Skipped], verbose: bool = False) -> list[str]:
    """What to say of the skipped files: one line for each problem with a file semsearch reads;
    files of types it does not read in one line (one per reason for types needing an extra);
    ``verbose``: every file on a line of its own."""
    if verbose:
        return [f"skipped {display(s.path)}: {printable(s.reason)}" for s in skipped]
    lines = [f"skipped {display(s.path)}: {printable(s.reason)}" for s in skipped if s.kind != UNSUPPORTED]
    groups: dict[str, list[str]] = {}
    for s in skipped:
        if s.kind == UNSUPPORTED:
            reason = "" if s.reason.startswith("unsupported file type") else s.reason
            groups.setdefault(reason, []).append(os.path.splitext(s.path)[1].lower() or "(no suffix)")
    for reason, suffixes in groups.items():
        counts = ", ".join(f"{suffix} {n}" for suffix, n in Counter(suffixes).most_common())
        what = f"skipped {count(len(suffixes), 'file')}"
        if reason:
            lines.append(f"{what} ({printable(counts)}): {printable(reason)}")
        else:
            lines.append(f"{what} of types semsearch does not read ({printable(counts)}); --verbose lists them")
    return lines


def print_checks(checks: list[Check], as_json: bool) -> None:
    """Each check as ``ok``/``FAIL`` with its detail (or JSON); exit 1 if any failed."""
    ok = all(c.ok for c in checks)
    if as_json:
        print_json({"ok": ok, "checks": [c.to_dict() for c in checks]})
    else:
        for c in checks:
            typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}" + (f": {printable(c.detail)}" if c.detail else ""))
    if not ok:
        raise typer.Exit(1)


def print_hits(hits: list[Hit], show_matched: bool = False, whole: bool = False) -> None:
    """Each hit's rank, score and place, then its passage on one line, or (``whole``) all of it."""
    if not hits:
        typer.echo("No results.")
    for hit in hits:
        place = f"{display(hit.source)}:{hit.line}" + (f" (page {hit.page})" if hit.page else "")
        place += f"  § {printable(hit.heading)}" if hit.heading else ""
        matched = f"  [{hit.matched}]" if show_matched else ""
        first = f" (first stage {hit.first_score:.4f})" if hit.first_score is not None else ""
        typer.echo(f"{hit.rank:>2}. {hit.score:.4f}{first}  {place}{matched}")
        text, highlights = _body(hit)
        if whole:
            typer.echo(textwrap.indent(_styled(_pieces(text, highlights)), "    ") + "\n")
        else:
            typer.echo(f"    {passage(text, highlights)}")


def _body(hit: Hit) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The hit's text without the heading lines it starts with when the ``§`` path above already
    shows them, and its highlights moved to match."""
    titles = {part.strip() for part in (hit.heading or "").split(">")}
    start = 0
    lines = hit.text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        stripped = line.strip()
        underline = number and set(stripped) <= {"=", "-"}  # a Markdown setext heading's (or a blank line)
        if not (underline or stripped.strip("#").strip() in titles):
            break
        start += len(line)
    if not titles - {""} or not hit.text[start:].strip():
        return hit.text, hit.highlights
    moved = tuple((max(s - start, 0), e - start) for s, e in hit.highlights if e > start)
    return hit.text[start:], moved


def _pieces(text: str, highlights: tuple[tuple[int, int], ...]) -> list[tuple[str, bool]]:
    """``text`` as (piece, highlighted) pairs."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for start, end in [*highlights, (len(text), len(text))]:
        pieces += [(text[at:start], False), (text[start:end], True)]
        at = end
    return pieces


def passage(text: str, highlights: tuple[tuple[int, int], ...], width: int = 240) -> str:
    """The passage on one line (runs of white space as one space), cut to ``width`` characters,
    with the highlighted spans in bold yellow (plain where the output is not a terminal)."""
    pieces = _pieces(text, highlights)
    shown: list[tuple[str, bool]] = []
    used, space = 0, False
    for piece, marked in pieces:
        words = "".join(" " if char.isspace() else char for char in piece)
        out: list[str] = []
        for char in words:
            if char == " " and (space or used == 0):
                continue
            space = char == " "
            if used == width - 1:
                shown.append(("".join(out), marked))
                return _styled(shown).rstrip() + "…"
            out.append(char)
            used += 1
        shown.append(("".join(out), marked))
    return _styled(shown).rstrip()


def _styled(pieces: list[tuple[str, bool]]) -> str:
    """The pieces joined, highlighted ones in bold yellow, control characters escaped (the
    passage's own line breaks kept)."""
    shown = [(printable(text, lines=True), marked) for text, marked in pieces]
    return "".join(typer.style(text, fg="yellow", bold=True) if marked and text else text for text, marked in shown)
