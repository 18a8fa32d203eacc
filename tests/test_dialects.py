"""Dialects without sockets, and verdicts that cannot come back clean from a server that does
not do the job (small fake servers on a thread). The fights against class-style servers, the
grading and the notebooks' use of them are in tests/test_foreign.py (slow tier)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from libsrv.protocol import Action, Code
from libsrv_bench.dialects import ClassDialect, Dialect, DialectError, dialect_named
from libsrv_bench.history import BAD_REPLY, REFUSED
from libsrv_bench.runner import RunOutcome, run_experiment
from libsrv_bench.settings import RunConfig

pytestmark = pytest.mark.fast


# ---------------------------------------------------------------- dialects, without sockets


def test_the_class_dialect_speaks_the_class_report_messages() -> None:
    dialect = ClassDialect()
    sent = json.loads(dialect.request(Action.LOAN_TITLE, {"title": "Rayuela",
                                                          "borrower": "Ana"}, "id-1"))
    assert sent == {"action": "Prestamo por Titulo", "title": "Rayuela", "borrower": "Ana"}
    assert not dialect.ids and Action.CATALOG not in dialect.actions


BOOK = {"ISBN": "9788437604947", "titulo": "Rayuela", "estado": "prestado",
        "prestatario": "Ana"}


@pytest.mark.parametrize(("action", "reply", "code"), [
    (Action.QUERY_ISBN, {"success": True, "found": True, "book": BOOK}, Code.OK),
    (Action.QUERY_ISBN, {"success": False, "found": False, "message": "x"}, Code.NOT_FOUND),
    (Action.LOAN_ISBN, {"success": False, "message": "No", "book": BOOK}, Code.UNAVAILABLE),
    (Action.LOAN_ISBN, {"success": False, "message": "El libro no está disponible"},
     Code.UNAVAILABLE),
    (Action.RETURN_ISBN, {"success": False, "message": "El libro no está prestado"},
     Code.NOT_LOANED),
    (Action.RETURN_ISBN, {"success": False, "message": "No", "book": BOOK}, REFUSED),
    (Action.LOAN_ISBN, {"success": False, "message": "Error: disco lleno"}, Code.INTERNAL),
    (Action.LOAN_ISBN, {"success": False, "message": "hoy no"}, REFUSED),
    (Action.LOAN_ISBN, {"ok": True}, BAD_REPLY),
    (Action.LOAN_ISBN, ["not", "an", "object"], BAD_REPLY),
])
def test_a_class_reply_asserts_only_what_it_shows(action: Action, reply: object,
                                                   code: str) -> None:
    fields = {"isbn": BOOK["ISBN"], "borrower": "Ana"}
    assert ClassDialect().reply(action, fields, json.dumps(reply).encode()).code == code


def test_a_kit_reply_without_a_code_is_unreadable() -> None:
    outcome = Dialect().reply(Action.LOAN_ISBN, {}, b'{"success": true, "book": {}}')
    assert outcome.code == BAD_REPLY


def test_a_dialect_of_your_own_loads_from_a_file_and_bad_ones_say_why(tmp_path: Path) -> None:
    mine = tmp_path / "group3.py"
    mine.write_text("from libsrv_bench.dialects import ClassDialect\n"
                    "class Group3(ClassDialect):\n    name = 'group3'\n")
    assert dialect_named(f"{mine}:Group3").name == "group3"
    with pytest.raises(DialectError, match="no Dialect subclass named 'Nope'"):
        dialect_named(f"{mine}:Nope")
    with pytest.raises(DialectError, match="unknown dialect"):
        dialect_named("klingon")
    (tmp_path / "broken.py").write_text("import nonexistent_module_x\n")
    with pytest.raises(DialectError, match="failed to load"):
        dialect_named(f"{tmp_path / 'broken.py'}:X")


# ---------------------------------------------------------------- no false clean verdict


class FakeKitServer:
    """A REP socket on a thread answering in the kit's protocol, badly on purpose: `answer`
    takes the decoded request and returns the reply object. Books live in `state`."""

    def __init__(self, ctx: zmq.Context, answer: Callable[[dict, dict], object]) -> None:
        self.state: dict[str, bool] = {}
        self._sock = ctx.socket(zmq.REP)
        self._sock.linger = 0
        port = self._sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self._answer = answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(50):
                continue
            request = json.loads(self._sock.recv())
            self._sock.send(json.dumps(self._answer(request, self.state)).encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sock.close()


BOOKS = [{"ISBN": isbn, "titulo": f"Libro {n}", "autores": ["A"], "estado": "no prestado",
          "prestatario": None, "fecha_prestamo": None, "fecha_devolucion": None}
         for n, isbn in enumerate(["9788437604947", "9788497592208", "9780140449266"])]


def _book(isbn: str, lent: bool, borrower: str | None = None) -> dict:
    base = next(b for b in BOOKS if b["ISBN"] == isbn)
    return {**base, "estado": "prestado" if lent else "no prestado",
            "prestatario": borrower if lent else None}


def no_code(request: dict, state: dict) -> object:
    return {"success": True, "message": "done"}


def always_error(request: dict, state: dict) -> object:
    if request["action"] == "catalog":
        return {"code": "OK", "books": BOOKS, "total": len(BOOKS)}
    return {"code": "INTERNAL", "message": "disk on fire"}


def half_applied(request: dict, state: dict) -> object:
    """Every write answered INTERNAL, every other one applied anyway; queries are truthful."""
    action, isbn = request["action"], request.get("isbn", "")
    if action == "catalog":
        return {"code": "OK", "books": BOOKS, "total": len(BOOKS)}
    if action == "query_isbn":
        return {"code": "OK", "book": _book(isbn, state.get(isbn, False))}
    state["n"] = state.get("n", 0) + 1
    if state["n"] % 2:
        state[isbn] = action == "loan_isbn"
    return {"code": "INTERNAL", "message": "maybe"}


@pytest.mark.parametrize("answer", [no_code, always_error, half_applied])
def test_a_server_that_does_not_do_the_job_is_never_clean(ctx: zmq.Context, tmp_path: Path,
                                                          answer: Callable) -> None:
    server = FakeKitServer(ctx, answer)
    catalog = tmp_path / "fake.json"
    catalog.write_text(json.dumps({"libros": BOOKS}))
    try:
        outcome = run_experiment(RunConfig(endpoint=server.endpoint, catalog=str(catalog),
                                workload="hot-spot", hot=3, clients=4, duration=1.0,
                                warmup=0.1, timeout=2.0), tmp_path, progress=False)
    finally:
        server.close()
    summary = outcome.summary
    assert summary["clean"] is False
    assert "failed" in " ".join(summary["not_clean"]), summary["not_clean"]


def query_only_run(server: FakeKitServer, tmp_path: Path) -> RunOutcome:
    """A second of queries by ISBN from four clients against `server`, closed after."""
    catalog = tmp_path / "fake.json"
    catalog.write_text(json.dumps({"libros": BOOKS}))
    try:
        return run_experiment(RunConfig(endpoint=server.endpoint, catalog=str(catalog),
                                        workload="mix:query_isbn=1", clients=4,
                                        duration=1.0, warmup=0.1), tmp_path, progress=False)
    finally:
        server.close()


def finds_nothing(request: dict, state: dict) -> object:
    return {"code": "NOT_FOUND", "message": "no such book"}


def test_a_server_that_finds_no_book_fails_even_a_query_only_run(ctx: zmq.Context,
                                                                  tmp_path: Path) -> None:
    """No write to check and no error code: still, every book asked for is in the catalog, so
    NOT_FOUND to all of them is a server not doing the job."""
    outcome = query_only_run(FakeKitServer(ctx, finds_nothing), tmp_path)
    assert outcome.summary["clean"] is False
    assert "not found" in " ".join(outcome.summary["not_clean"])


def one_record_for_all(request: dict, state: dict) -> object:
    """Every query answered with the first book's record, whatever was asked."""
    return {"code": "OK", "book": _book(BOOKS[0]["ISBN"], False)}


def truthful(request: dict, state: dict) -> object:
    if "isbn" not in request:  # the bench's ping before the run
        return {"code": "OK", "message": "pong"}
    return {"code": "OK", "book": _book(request["isbn"], False)}


@pytest.mark.parametrize(("answer", "clean"), [(one_record_for_all, False), (truthful, True)])
def test_a_server_that_answers_with_another_book_fails_a_query_only_run(
        ctx: zmq.Context, tmp_path: Path, answer: Callable, clean: bool) -> None:
    """A reply about another book is evidence about neither, and no error: only the
    wrong-book finding tells this server from a correct one."""
    outcome = query_only_run(FakeKitServer(ctx, answer), tmp_path)
    assert outcome.summary["clean"] is clean, outcome.summary["not_clean"]
    kinds = {v["kind"] for v in outcome.verdict["details"]}
    assert kinds == (set() if clean else {"wrong-book"})
    if not clean:  # one finding per book asked about other than the one every reply shows
        assert outcome.summary["violations"] == len(BOOKS) - 1
