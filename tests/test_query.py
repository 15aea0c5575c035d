"""Query is the one list of search options: the query command's flags, the server's request
body and the retrievers are made from its fields (and Where's) or checked by them."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from semsearch.errors import InvalidOptionError
from semsearch.query import Option, Query, Where, options

QUERY_OPTIONS = [found.name for found, _ in options(Query)]
FILTERS = [found.name for found, _ in options(Where)]


def test_every_option_is_a_flag_of_the_query_command() -> None:
    from semsearch.cli import app

    shown = CliRunner().invoke(app, ["query", "--help"], terminal_width=200)
    assert shown.exit_code == 0
    for cls in (Query, Where):
        for found, how in options(cls):
            for flag in how.names(found.name):
                assert f"{flag} " in shown.stdout, flag
            assert how.help[:40] in " ".join(shown.stdout.split())


def test_every_option_is_a_field_of_the_search_request() -> None:
    pytest.importorskip("fastapi")
    from semsearch.serving.models import Filters, SearchRequest

    assert set(SearchRequest.model_fields) == {"query", "where", *QUERY_OPTIONS}
    assert set(Filters.model_fields) == set(FILTERS)
    schema = SearchRequest.model_json_schema()
    for found, how in options(Query):
        field = schema["properties"][found.name]
        assert field["description"] == how.help
        if how.kind is int:
            assert field["maximum"] == (how.served_high or how.high) and field["minimum"] == how.low
    request = SearchRequest(query=["a", "b"], k=3, mode="hybrid", where={"types": ["md"], "modified_after": "7d"})
    first, second = request.queries()
    assert first == Query("a", 3, mode="hybrid", where=first.where) and second.text == "b"
    assert first.where.types == ("md",) and first.where.modified_after is not None


def test_a_new_option_is_offered_from_its_declaration_alone() -> None:
    # what the CLI and the server make of an option they have never seen
    pytest.importorskip("fastapi")
    from pydantic import ValidationError, create_model

    from semsearch.cli.search import flag
    from semsearch.serving.models import Strict, served

    how = Option(help="Rerank the best N.", kind=int, metavar="N", low=1, high=500, served_high=50)
    seen: dict[str, int] = {}

    def command(**given: int) -> None:
        seen.update(given)

    parameter = flag("rerank_top", how, 20)
    command.__signature__ = inspect.Signature([parameter])  # type: ignore[attr-defined]
    command.__annotations__ = {"rerank_top": parameter.annotation}
    app = typer.Typer()
    app.command()(command)
    assert CliRunner().invoke(app, ["--rerank-top", "7"]).exit_code == 0 and seen == {"rerank_top": 7}
    assert CliRunner().invoke(app, []).exit_code == 0 and seen == {"rerank_top": 20}
    assert CliRunner().invoke(app, ["--rerank-top", "501"]).exit_code == 2  # out of bounds
    assert "Rerank the best N." in CliRunner().invoke(app, ["--help"]).stdout
    model = create_model("Request", __base__=Strict, rerank_top=served(how, 20))
    assert model().rerank_top == 20 and model(rerank_top=50).rerank_top == 50
    with pytest.raises(ValidationError):
        model(rerank_top=51)  # the server's tighter bound
    with pytest.raises(ValidationError):
        model(rerank_top=True)  # a JSON integer, never a boolean


def test_check_options_names_an_unknown_option_and_normalises_where() -> None:
    checked = Query.check_options(k=2, where={"type": "md"})
    assert checked == {"k": 2, "where": Where(types=("md",))}
    with pytest.raises(InvalidOptionError, match="Unknown search option 'colour'"):
        Query.check_options(colour="red")
    with pytest.raises(InvalidOptionError, match="context must be at least 0"):
        Query.check_options(context=-1)
