"""The protocol module on its own: no sockets, no files."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libsrv.domain import fold, isbn13_check_digit, isbn13_is_valid
from libsrv.messages import LANGUAGES, keys, render
from libsrv.protocol import (
    LEGACY_ACTIONS,
    MAX_BORROWER_CHARS,
    MAX_FRAME_BYTES,
    Action,
    ProtocolError,
    encode_request,
    parse_request,
    peek_request,
)

pytestmark = pytest.mark.fast


def parse(obj: object) -> object:
    return parse_request([json.dumps(obj).encode()])


def error_key(frames: list[bytes]) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_request(frames)
    return caught.value.key


def test_each_action_parses_with_the_fields_it_needs() -> None:
    r = parse({"action": "loan_isbn", "isbn": "978-84-376-0494-7", "borrower": "  Ana  López ",
               "id": "x1", "v": 1})
    assert (r.action, r.isbn, r.borrower, r.id) == (Action.LOAN_ISBN, "9788437604947",
                                                    "Ana López", "x1")
    assert parse({"action": "query_title", "title": " sombra "}).title == "sombra"
    assert parse({"action": "catalog", "offset": 5, "limit": 7}).limit == 7
    assert parse({"action": "ping"}).action == Action.PING


@pytest.mark.parametrize(("name", "action"), [
    ("Prestamo por ISBN", Action.LOAN_ISBN), ("Prestamo por Titulo", Action.LOAN_TITLE),
    ("Consulta por ISBN", Action.QUERY_ISBN), ("Devolucion por ISBN", Action.RETURN_ISBN),
    ("Consulta por Titulo", Action.QUERY_TITLE), ("Préstamo por Título", Action.LOAN_TITLE),
])
def test_the_class_spanish_action_names_are_aliases(name: str, action: Action) -> None:
    fields = {"isbn": "9788437604947", "title": "x", "borrower": "Guillermo"}
    request = parse({"action": name, **fields})
    assert request.action == action and request.legacy


def test_legacy_table_covers_every_write_and_query() -> None:
    assert set(LEGACY_ACTIONS.values()) == {Action.QUERY_ISBN, Action.QUERY_TITLE,
                                            Action.LOAN_ISBN, Action.LOAN_TITLE,
                                            Action.RETURN_ISBN}


@pytest.mark.parametrize(("frames", "key"), [
    ([b"not json"], "bad_json"),
    ([b"[1, 2]"], "not_object"),
    ([b"\xff\xfe{}"], "bad_utf8"),
    ([b'{"action": "ping"}', b"extra"], "frames"),
    ([], "frames"),
    ([b'{"action": "fly"}'], "unknown_action"),
    ([b'{"isbn": "1"}'], "missing_field"),
    ([b'{"action": "loan_isbn", "isbn": "9788437604947"}'], "missing_field"),
    ([b'{"action": "loan_isbn", "isbn": 9788437604947, "borrower": "a"}'], "wrong_type"),
    ([b'{"action": "loan_isbn", "isbn": "9788437604947", "borrower": "   "}'], "blank_field"),
    ([b'{"action": "loan_isbn", "isbn": "9788437604947", "borrower": "a\\u0000b"}'],
     "control_chars"),
    ([b'{"action": "loan_isbn", "isbn": "9788437604947", "borrower": "\\ud800"}'], "bad_text"),
    ([b'{"action": "catalog", "limit": 0}'], "out_of_range"),
    ([b'{"action": "catalog", "limit": true}'], "wrong_type"),
    ([b'{"action": "ping", "v": 2}'], "bad_version"),
    ([b'{"action": "ping", "id": 7}'], "bad_id"),
    ([b'{"action": "ping", "id": "' + b"x" * 200 + b'"}'], "bad_id"),
    ([b'{"action": "catalog", "offset": NaN}'], "bad_json"),
    ([b'{"action": "catalog", "offset": Infinity}'], "bad_json"),
    ([b'{"action": "catalog", "offset": 1' + b"0" * 5000 + b"}"], "bad_json"),
    ([b'{"action": "catalog", "offset": 1e999}'], "bad_json"),
    ([b"[" * 50_000 + b"]" * 50_000], "too_big"),
    ([b"[" * 30_000 + b"]" * 30_000], "bad_json"),
    ([b" " * (MAX_FRAME_BYTES + 1)], "too_big"),
])
def test_malformed_requests_are_refused_with_a_reason(frames: list[bytes], key: str) -> None:
    assert error_key(frames) == key
    assert key in keys()


def test_borrower_longer_than_the_limit_is_refused() -> None:
    name = "a" * (MAX_BORROWER_CHARS + 1)
    assert error_key([encode_request("loan_isbn", isbn="9788437604947", borrower=name)]) == \
        "too_long"
    ok = parse_request([encode_request("loan_isbn", isbn="9788437604947", borrower=name[:-1])])
    assert ok.borrower == name[:-1]


def test_an_unparseable_request_still_echoes_its_id_when_it_can() -> None:
    frames = [b'{"action": "fly", "id": "abc"}']
    with pytest.raises(ProtocolError) as caught:
        parse_request(frames)
    assert caught.value.request_id == "abc"
    assert peek_request(frames) == ("abc", False)
    assert peek_request([b"{"]) == (None, False)
    assert peek_request([b'{"action": "Prestamo por ISBN", "id": "x"}']) == ("x", True)


def test_isbn_check_digits() -> None:
    assert isbn13_is_valid("9788437604947")
    assert not isbn13_is_valid("9788437604948")
    assert not isbn13_is_valid("978843760494")
    assert not isbn13_is_valid("97884376049４7")  # a full-width digit is not ASCII
    assert isbn13_check_digit("978014044926") == "6"


def test_fold_ignores_case_accents_and_spaces() -> None:
    assert fold("  La SOMBRA   del Viénto ") == fold("la sombra del viento")
    assert fold("Fiódor") == "fiodor"


def test_fingerprint_tells_different_writes_apart() -> None:
    a = parse({"action": "loan_isbn", "isbn": "9788437604947", "borrower": "Ana"})
    b = parse({"action": "loan_isbn", "isbn": "978-8437604947", "borrower": "Ana"})
    c = parse({"action": "loan_isbn", "isbn": "9788437604947", "borrower": "Eva"})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_every_message_renders_in_every_language() -> None:
    params = dict(count=1, limit=1, version=1, offset=1, field="f", expected="e", low=0, high=1,
                  given="g", known="k",
                  isbn="i", id="x", title="t", text="t", borrower="b", due="d", first=1,
                  last=1, total=1, reason="r", method="m")
    for key in keys():
        for lang in LANGUAGES:
            assert render(key, lang, **params)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries({}, optional={
    "action": st.sampled_from([*list(Action), *LEGACY_ACTIONS, "x"]) | json_values,
    "isbn": st.text(max_size=40) | json_values,
    "title": st.text(max_size=400) | json_values,
    "borrower": st.text(max_size=120) | json_values,
    "id": st.text(max_size=140) | json_values,
    "offset": st.integers() | json_values,
    "limit": st.integers() | json_values,
    "v": st.integers(0, 2) | json_values,
})


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=3))
def test_fuzz_any_bytes_parse_or_are_refused(frames: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        parse_request(frames)


@settings(max_examples=600, deadline=None)
@given(fields)
def test_fuzz_any_object_parses_to_clean_fields_or_is_refused(obj: dict) -> None:
    try:
        frame = json.dumps(obj, ensure_ascii=True).encode()
    except (ValueError, RecursionError):
        return
    try:
        request = parse_request([frame])
    except ProtocolError:
        return
    for value in (request.isbn, request.title, request.borrower, request.id):
        if value is not None:
            assert isinstance(value, str) and value.strip() and value.encode("utf-8")
    assert request.offset >= 0 and 1 <= request.limit <= 1000


def test_the_protocol_docs_example_is_a_reply_the_server_would_give() -> None:
    """docs/protocol.md's example request and reply agree with each other and with the code."""
    import re
    from datetime import date, timedelta

    from libsrv.library import DEFAULT_LOAN_DAYS
    from libsrv.messages import render
    from tests.helpers import ROOT

    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "protocol.md").read_text(),
                        re.S)
    request = parse_request([blocks[0].encode()])
    reply = json.loads(blocks[1])
    book = reply["book"]
    assert book["ISBN"] == request.isbn and reply["id"] == request.id
    assert reply["code"] == "UNAVAILABLE" and reply["success"] is False
    assert date.fromisoformat(book["fecha_devolucion"]) - \
        date.fromisoformat(book["fecha_prestamo"]) == timedelta(days=DEFAULT_LOAN_DAYS)
    assert reply["message"] == render("unavailable", "en", title=book["titulo"],
                                      due=book["fecha_devolucion"])
    assert set(reply) >= {"success", "code", "message", "book", "books"}


def test_every_widget_word_exists_in_every_language() -> None:
    from libsrv.messages import _WORDS, word, word_keys

    for key in word_keys():
        assert set(_WORDS[key]) == set(LANGUAGES), key
        for lang in LANGUAGES:
            assert word(key, lang, total=1, shown=1, endpoint="e", error="x", loans=1, returns=1,
                        seq=1, resyncs=0, first=1, last=2)
