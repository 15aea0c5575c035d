"""Folding text for lexical matching: one form for the ways of writing that a reader takes as the
same word, applied alike to what is indexed and to the query.

Three steps: NFKC (full-width ＡＢＣ１２３ to ABC123, compatibility ideographs to unified ones), case
folding, then Traditional Chinese to Simplified by OpenCC's ``tw2sp`` tables: Taiwan phrases first
(軟體 -> 软件, 記憶體 -> 内存, 滑鼠 -> 鼠标), then phrases and characters (長城 -> 长城). Simplified
text passes through almost unchanged (a few characters and phrases that also have a Traditional
reading are converted, 乾 -> 干, 相容 -> 兼容); the same fold on both sides keeps them matching.

``aligned`` also says, for each character of the folded text, which characters of the original
it came from, so a match in folded text can be shown on the original (記憶體 is 3 characters,
内存 is 2).
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import pairwise
from typing import Any

OPENCC_CONFIG = "tw2sp"  # Traditional (Taiwan standard, with Taiwan phrases) to Simplified
# what the stored terms were folded with: an index whose terms carry an older version is re-termed
TERMS_VERSION = 2  # 1: NFKC + casefold; 2: and Traditional -> Simplified (OpenCC tw2sp)
_BETWEEN = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]+")  # runs of anything but ideographs


def fold(text: str) -> str:
    """NFKC, case-folded, then Traditional Chinese as Simplified (phrase by phrase)."""
    return _converter().convert(unicodedata.normalize("NFKC", text).casefold())


def aligned(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` folded as ``fold`` folds it, and for each character of the result the span of
    ``text`` it came from (start, end), so a span of the folded text maps back to the original.

    Each step is done so that its correspondence is known: NFKC and case folding character by
    character (the same as on the whole text but for combining sequences), then OpenCC on the
    whole, lined up against OpenCC character by character: they differ only where a phrase was
    converted, and only there is a stretch mapped as a whole (記憶體 <-> 内存).
    """
    folded_case = text.casefold()
    if len(folded_case) == len(text) and unicodedata.is_normalized("NFKC", text):
        # the usual case, at C speed: NFKC changes nothing and case folding keeps every length
        normal, starts, ends = folded_case, list(range(len(text))), list(range(1, len(text) + 1))
    else:
        starts = []
        normal = _per_character(text, _normalised, starts)
        ends = [start + 1 for start in starts]
    simplified = _converter().convert(normal)
    if len(simplified) == len(normal):
        # phrases converted to phrases as long (乾隆 kept where 乾 alone is 干, 滑鼠 -> 鼠标): one
        # for one. Only a phrase that grows with another that shrinks in one text could make this
        # approximate, and tw2sp's phrases practically never grow
        return simplified, starts, ends
    singly = _per_character(normal, _simplified_alone, None)  # one character each: as long as normal
    return simplified, *_line_up(normal, singly, simplified, starts, ends)


def _line_up(normal: str, singly: str, whole: str, starts: list[int], ends: list[int]) -> tuple[list[int], list[int]]:
    """Spans for ``whole`` (``normal`` converted) from the spans of ``singly`` (``normal``
    converted character by character, one for one with it): equal stretches and stretches of
    equal length character for character, any other stretch phrase by phrase. Lined up clause
    by clause (a phrase is all ideographs), so the cost stays linear in the text."""
    new_starts: list[int] = []
    new_ends: list[int] = []
    for (a0, a1), (b0, b1) in _clauses(singly, whole):
        if singly[a0:a1] == whole[b0:b1]:
            new_starts += starts[a0:a1]
            new_ends += ends[a0:a1]
            continue
        matcher = SequenceMatcher(None, singly[a0:a1], whole[b0:b1], autojunk=False)
        for _, c0, c1, d0, d1 in matcher.get_opcodes():
            for source, length in _phrases(normal, a0 + c0, a0 + c1, whole[b0 + d0 : b0 + d1]):
                if source[1] - source[0] == length:
                    new_starts += starts[source[0] : source[1]]
                    new_ends += ends[source[0] : source[1]]
                elif length:
                    # a stretch that came from nothing is put with the character before it
                    near = source if source[1] > source[0] else (max(source[0] - 1, 0), max(source[0], 1))
                    new_starts += [starts[near[0]]] * length
                    new_ends += [ends[near[1] - 1]] * length
    return new_starts, new_ends


def _clauses(singly: str, whole: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Corresponding stretches of the two: runs of ideographs and the runs between them, which
    OpenCC leaves as they are; the whole of each if it did not."""
    marks = [[m.span() for m in _BETWEEN.finditer(text)] for text in (singly, whole)]
    if [singly[a:b] for a, b in marks[0]] != [whole[a:b] for a, b in marks[1]]:
        return [((0, len(singly)), (0, len(whole)))]
    edges = [
        [0, *[x for span in found for x in span], len(text)] for found, text in zip(marks, (singly, whole), strict=True)
    ]
    return list(zip(pairwise(edges[0]), pairwise(edges[1]), strict=True))


def _phrases(normal: str, a0: int, a1: int, target: str) -> list[tuple[tuple[int, int], int]]:
    """``normal[a0:a1]``, which converts to ``target``, cut where it converts piece by piece (軟體記憶體
    -> 软件 + 内存): each piece's span in ``normal`` and the length it converts to."""
    convert = _converter().convert
    if a1 - a0 == len(target) or a1 - a0 > 64:  # one for one, or too long to cut at every place
        return [((a0, a1), len(target))]
    for cut in range(a0 + 1, a1):
        head = convert(normal[a0:cut])
        if target.startswith(head) and convert(normal[cut:a1]) == target[len(head) :]:
            return [((a0, cut), len(head)), *_phrases(normal, cut, a1, target[len(head) :])]
    return [((a0, a1), len(target))]


def _per_character(text: str, each: Any, starts: list[int] | None) -> str:
    """``text`` with each distinct character replaced by ``each(character)``, at C speed with
    ``str.translate``; ``starts`` gets, per result character, the index it came from."""
    table = {ord(char): each(char) for char in set(text)}
    table = {code: mapped for code, mapped in table.items() if mapped != chr(code)}
    result = text.translate(table) if table else text
    if starts is not None:
        if len(result) == len(text):
            starts.extend(range(len(text)))
        else:  # a character folded to several (ﬁ -> fi, ß -> ss) or to none
            for index, char in enumerate(text):
                starts.extend([index] * len(table.get(ord(char), char)))
    return result


@lru_cache(maxsize=65_536)
def _normalised(char: str) -> str:
    return unicodedata.normalize("NFKC", char).casefold()


@lru_cache(maxsize=65_536)
def _simplified_alone(char: str) -> str:
    return str(_converter().convert(char))


@lru_cache(maxsize=1)
def _converter() -> Any:
    """OpenCC's converter, loaded once (its tables are read when it is built: about 5 ms)."""
    import opencc

    return opencc.OpenCC(OPENCC_CONFIG)
