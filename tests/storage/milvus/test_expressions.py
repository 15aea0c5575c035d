"""Paths in Milvus expressions: what every parser reads back as written, and the ``hex:`` form of
the rest, which keeps a folder's paths inside its range."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semsearch.storage.milvus.expressions import HEX, expressible, literal, loaded_path, stored_path, under

names = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\0", b"").replace(b"/", b"") or b"x")
paths = st.lists(names, min_size=1, max_size=4).map(lambda parts: os.fsdecode(b"/" + b"/".join(parts)))


@given(paths)
def test_every_path_is_stored_in_a_form_an_expression_can_name_and_read_back(path: str) -> None:
    stored = stored_path(path)
    assert expressible(stored) and loaded_path(stored) == path
    assert stored == path or (stored.startswith(HEX) and not expressible(path))


@given(st.binary(max_size=30), st.binary(max_size=30))
def test_hex_keeps_the_order_of_bytes_so_a_folder_is_a_range(first: bytes, second: bytes) -> None:
    assert (first < second) == (first.hex() < second.hex())
    assert first.startswith(second) == first.hex().startswith(second.hex())


def test_only_cr_lf_and_bytes_that_are_not_utf8_go_to_hex() -> None:
    for raw in ['say "hi" it\'s', "a\\b", "100%_x", "\t\x01\x1f\x7f\x85\u202e", "😀𠮷", "and in like true", "hex:41"]:
        assert stored_path("/d/" + raw) == "/d/" + raw
    for hostile in ["a\rb", "a\nb", os.fsdecode(b"a\xffb")]:
        assert stored_path("/d/" + hostile) == HEX + os.fsencode("/d/" + hostile).hex()
        with pytest.raises(ValueError):
            literal(hostile)
    assert literal('a\\"b') == '"a\\\\\\"b"'


def test_a_folder_is_matched_as_itself_and_in_hex_and_only_in_hex_when_it_must_be() -> None:
    assert under("/d/x") == (
        '(path == "/d/x" or (path >= "/d/x/" and path < "/d/x0") or '
        f'path == "{HEX}2f642f78" or (path >= "{HEX}2f642f782f" and path < "{HEX}2f642f7830"))'
    )
    assert "\r" not in under("/d/a\rb") and under("/d/a\rb").count(HEX) == 3
    assert under("/") == 'path >= "/"' and HEX > "/"
