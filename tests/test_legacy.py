"""The class's own client messages and DB.json, unchanged, against our server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import zmq

from libsrv.catalog import LENT
from tests.helpers import CLASS_DB, raw_exchange

pytestmark = pytest.mark.fast


def send(ctx: zmq.Context, endpoint: str, message: dict) -> dict:
    # The class's client: one JSON frame on a REQ socket, Spanish action names, no id, no v.
    return json.loads(raw_exchange(ctx, endpoint, [json.dumps(message).encode()]))


def test_class_client_and_db_work_unchanged(start_server, tmp_path: Path,
                                            ctx: zmq.Context) -> None:
    db = tmp_path / "DB.json"
    shutil.copy(CLASS_DB, db)
    original = json.loads(db.read_text(encoding="utf-8"))
    server = start_server(db, workers=2)
    moby = "9780142437230"  # available in the class's data
    lent = next(b for b in original["libros"] if b["estado"] == LENT)
    bad_check = "9788491050297"  # stored with a wrong check digit

    q = send(ctx, server.endpoint, {"action": "Consulta por ISBN", "isbn": moby})
    assert q["success"] and q["found"] and q["book"]["titulo"] == "Moby Dick"
    assert send(ctx, server.endpoint, {"action": "Consulta por ISBN",
                                       "isbn": bad_check})["found"]
    missing = send(ctx, server.endpoint, {"action": "Consulta por ISBN",
                                          "isbn": "9780000000002"})
    assert (missing["success"], missing["found"]) == (False, False)

    loan = send(ctx, server.endpoint, {"action": "Prestamo por ISBN", "isbn": moby,
                                       "borrower": "Samuel"})
    assert loan["success"] and loan["book"]["prestatario"] == "Samuel" and loan["message"]
    again = send(ctx, server.endpoint, {"action": "Prestamo por Titulo", "title": "Moby Dick",
                                        "borrower": "Guillermo"})
    assert not again["success"] and loan["book"]["fecha_devolucion"] in again["message"]
    taken = send(ctx, server.endpoint, {"action": "Prestamo por Titulo",
                                        "title": lent["titulo"], "borrower": "Ana"})
    assert not taken["success"] and taken["book"]["prestatario"] == lent["prestatario"]
    back = send(ctx, server.endpoint, {"action": "Devolucion por ISBN", "isbn": lent["ISBN"]})
    assert back["success"] and back["book"]["estado"] == "no prestado"
    by_title = send(ctx, server.endpoint, {"action": "Consulta por Titulo", "title": "moby"})
    assert by_title["found"] and by_title["book"]["ISBN"] == moby
    assert server.stop() == 0

    saved = json.loads(db.read_text(encoding="utf-8"))
    assert list(saved) == ["libros"] and len(saved["libros"]) == len(original["libros"])
    changed = {b["ISBN"] for b, o in zip(saved["libros"], original["libros"], strict=True)
               if b != o}
    assert changed == {moby, lent["ISBN"]}
    for book in saved["libros"]:
        assert list(book) == ["ISBN", "titulo", "autores", "estado", "prestatario",
                              "fecha_prestamo", "fecha_devolucion"]


def test_replies_follow_the_language_of_the_action_name(shared_servers,
                                                        ctx: zmq.Context) -> None:
    server, _ = shared_servers(0)  # read-only: queries and refused requests
    isbn = "9788437604947"
    spanish = send(ctx, server.endpoint, {"action": "Consulta por ISBN", "isbn": isbn})
    english = send(ctx, server.endpoint, {"action": "query_isbn", "isbn": isbn})
    assert spanish["message"].startswith("Libro encontrado")
    assert english["message"].startswith("Book found")
    # an error in a Spanish request is explained in Spanish too
    missing = send(ctx, server.endpoint, {"action": "Prestamo por ISBN", "isbn": isbn})
    assert missing["code"] == "BAD_REQUEST"
    assert missing["message"] == "Falta el campo 'borrower'."
    unknown = send(ctx, server.endpoint, {"action": "Consulta por Autor"})
    # no way to tell which language it wanted; it is told what it sent and what would work
    assert unknown["message"].startswith("Unknown action 'Consulta por Autor'; the actions ")
    assert "query_isbn" in unknown["message"]
    # the catalog's Spanish field name is pointed to the request's
    misnamed = send(ctx, server.endpoint, {"action": "Prestamo por Titulo",
                                           "titulo": "Moby Dick", "borrower": "Ana"})
    assert misnamed["code"] == "BAD_REQUEST"
    assert misnamed["message"] == "El campo se llama 'title', no 'titulo'."


def test_lang_flag_sets_one_language_for_every_reply(start_server, catalog_file: Path,
                                                     ctx: zmq.Context) -> None:
    server = start_server(catalog_file, workers=0, args=["--lang", "en"])
    reply = send(ctx, server.endpoint, {"action": "Consulta por ISBN", "isbn": "9788437604947"})
    assert reply["message"].startswith("Book found")
    spanish = start_server(catalog_file, workers=0, args=["--lang", "es"])
    reply = send(ctx, spanish.endpoint, {"action": "ping"})
    assert reply["code"] == "OK"
    reply = send(ctx, spanish.endpoint, {"action": "query_isbn", "isbn": "9788437604947"})
    assert reply["message"].startswith("Libro encontrado")
