"""`Service` in one process, against the in-memory engine: every decision a server makes about
a request frame (parse, rules, ids, counts, errors), with no socket and no file, in
milliseconds. The same decisions over real sockets and files are in test_server, test_storage
and test_concurrency."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from libsrv.catalog import AVAILABLE, Catalog
from libsrv.library import Policy
from libsrv.protocol import Action, Code, encode_request
from libsrv.service import Service
from libsrv.shipped import shipped_catalog_bytes
from libsrv.stats import StatsBoard
from libsrv.storage import StorageError
from libsrv.storage.memory import MemoryStorage

pytestmark = pytest.mark.fast

TODAY = date(2026, 3, 2)


@pytest.fixture
def service() -> Service:
    storage = MemoryStorage.from_bytes(shipped_catalog_bytes())
    return Service(storage, Policy(), StatsBoard(0, storage.name), today=lambda: TODAY)


def ask(service: Service, frame: bytes | dict[str, Any], key: bytes | None = None
        ) -> dict[str, Any]:
    frame = json.dumps(frame).encode() if isinstance(frame, dict) else frame
    handled = service.handle([frame], key)
    assert handled is not None  # the memory engine never finds a lock held
    reply = json.loads(handled.frame)
    assert handled.code == reply["code"]
    return reply


def available_isbn(service: Service) -> str:
    return next(b["ISBN"] for b in service.storage.read() if b["estado"] == AVAILABLE)


def test_a_loan_and_its_return_change_the_book_and_count_as_changes(service: Service) -> None:
    isbn = available_isbn(service)
    loan = ask(service, encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Ana"))
    assert (loan["code"], loan["book"]["prestatario"]) == ("OK", "Ana")
    assert loan["book"]["fecha_prestamo"] == TODAY.isoformat()
    assert service.storage.read().get(isbn)["estado"] == "prestado"
    again = ask(service, encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Luis"))
    assert again["code"] == Code.UNAVAILABLE
    assert service.storage.read().get(isbn)["prestatario"] == "Ana"
    assert ask(service, encode_request(Action.RETURN_ISBN, isbn=isbn))["code"] == "OK"
    assert ask(service, encode_request(Action.RETURN_ISBN, isbn=isbn))["code"] == \
        Code.NOT_LOANED
    assert service.storage.seq == 2  # the refusals changed nothing


def test_a_retried_write_is_answered_as_the_first_time_and_applied_once(
        service: Service) -> None:
    isbn = available_isbn(service)
    loan = encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Ana", id="c1-1")
    first = ask(service, loan)
    assert ask(service, loan) == first
    assert service.storage.seq == 1
    reused = ask(service, encode_request(Action.RETURN_ISBN, isbn=isbn, id="c1-1"))
    assert reused["code"] == Code.BAD_REQUEST and "c1-1" in reused["message"]
    assert service.storage.read().get(isbn)["estado"] == "prestado"


def test_the_brokers_key_makes_a_resent_write_without_an_id_apply_once(
        service: Service) -> None:
    isbn = available_isbn(service)
    loan = encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Ana")
    first = ask(service, loan, key=b"k1")
    assert ask(service, loan, key=b"k1") == first and "id" not in first
    assert service.storage.seq == 1
    assert ask(service, loan, key=b"k2")["code"] == Code.UNAVAILABLE  # a new request


@pytest.mark.parametrize("frame", [
    b"", b"\xff\xfe", b"[]", b"null", b'{"action": 5}', b'{"action": "steal"}',
    b'{"action": "loan_isbn", "isbn": "x"}', b'{"action": "loan_isbn", "isbn": 7, '
    b'"borrower": "a"}', b'{"action": "query_title", "titulo": "Dune"}',
    json.dumps({"action": "loan_isbn", "isbn": "1" * 10_000, "borrower": "a"}).encode()])
def test_bad_input_gets_a_coded_error_and_changes_nothing(service: Service,
                                                          frame: bytes) -> None:
    before = service.storage.read().to_bytes()
    reply = ask(service, frame)
    assert (reply["success"], reply["code"]) == (False, Code.BAD_REQUEST)
    assert reply["message"]
    assert service.storage.read().to_bytes() == before and service.storage.seq == 0


def test_the_class_clients_spanish_request_gets_a_spanish_reply(service: Service) -> None:
    isbn = available_isbn(service)
    reply = ask(service, {"action": "Prestamo por ISBN", "isbn": isbn, "borrower": "Ana"})
    assert reply["code"] == "OK"
    assert ask(service, {"action": "Consulta por ISBN", "isbn": isbn})["book"]["estado"] == \
        "prestado"
    refused = ask(service, {"action": "Prestamo por ISBN", "isbn": isbn, "borrower": "Luis"})
    assert refused["code"] == Code.UNAVAILABLE
    english = ask(service, encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Luis"))
    assert refused["message"] != english["message"]  # one is Spanish, the other English


def test_stats_count_every_reply_by_action_and_code(service: Service) -> None:
    isbn = available_isbn(service)
    ask(service, encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Ana"))
    ask(service, encode_request(Action.LOAN_ISBN, isbn=isbn, borrower="Ana"))
    ask(service, b"not json")
    stats = ask(service, encode_request(Action.STATS))["stats"]
    assert stats["books"] == len(service.storage.read())
    assert stats["by_code"]["OK"] == 1 and stats["by_code"]["UNAVAILABLE"] == 1
    assert stats["by_code"]["BAD_REQUEST"] == 1


def test_a_failing_storage_answers_internal_and_the_service_keeps_serving() -> None:
    storage = MemoryStorage(Catalog.from_bytes(shipped_catalog_bytes()))
    service = Service(storage, Policy(), StatsBoard(0, storage.name))
    storage.close()
    reply = ask(service, encode_request(Action.QUERY_ISBN, isbn="9780307474278", id="q"))
    assert (reply["code"], reply["id"]) == (Code.INTERNAL, "q")
    with pytest.raises(StorageError):
        storage.read()
    assert ask(service, encode_request(Action.PING))["code"] == "OK"


def test_a_snapshot_says_which_change_it_reflects(service: Service) -> None:
    assert ask(service, encode_request(Action.SNAPSHOT))["seq"] == 0
    ask(service, encode_request(Action.LOAN_ISBN, isbn=available_isbn(service),
                                borrower="Ana"))
    assert ask(service, encode_request(Action.SNAPSHOT))["seq"] == 1
