"""Stand-ins for a student group's server, written for these tests (none of the class's code):
the class report's protocol (Spanish action names, ``{"success", "found", "message", "book"}``
replies, no ids, no codes) over a catalog file rewritten whole on every change.

    python -m tests.class_servers KIND --db FILE [--workers N] [--port P]

KIND is how the group got it: ``correct`` (a FileLock around each read-modify-write, the file
replaced atomically), ``nolock`` (no lock: concurrent workers lose updates), ``liar`` (loans
acknowledged and never written), ``breaks`` (no lock, and the file rewritten in place, so
concurrent writers leave it broken). ``--workers 0`` is one REP socket; N > 0 puts libzmq's
``zmq.proxy`` in front of N worker processes, as the class did. Prints ``serving on ENDPOINT``
once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

import zmq
from filelock import FileLock

from libsrv.domain import fold

KINDS = ("correct", "nolock", "liar", "breaks")
LENT, AVAILABLE = "prestado", "no prestado"
LOAN_DAYS = 14


def command(kind: str, db: Path | str, workers: int = 0, port: int = 0) -> list[str]:
    """The command line that runs this server (for `ServerProcess` or a grading file)."""
    return [sys.executable, str(Path(__file__).resolve()), kind, "--db", str(db), "--workers",
            str(workers), *(["--port", str(port)] if port else [])]


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, document: dict[str, Any], *, in_place: bool) -> None:
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if in_place:  # truncate, then write piece by piece: a reader or writer in between breaks it
        with path.open("w", encoding="utf-8") as file:
            for start in range(0, len(text), 512):
                file.write(text[start:start + 512])
                file.flush()
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _find(books: list[dict[str, Any]], message: dict[str, Any]) -> dict[str, Any] | None:
    if "isbn" in message:
        return next((b for b in books if b["ISBN"] == str(message["isbn"])), None)
    title = fold(str(message.get("title", "")))
    return next((b for b in books if title and title in fold(b["titulo"])), None)


def handle(kind: str, path: Path, frame: bytes) -> dict[str, Any]:
    """One request, answered the class's way: always a reply, `success` false on any error."""
    try:
        message = json.loads(frame)
        action = fold(str(message["action"]))
    except (ValueError, KeyError, TypeError):
        return {"success": False, "message": "Error: petición inválida"}
    guard = FileLock(f"{path}.lock") if kind in ("correct", "liar") else contextlib.nullcontext()
    try:
        with guard:
            document = _read(path)
            book = _find(document["libros"], message)
            if book is None:
                return {"success": False, "found": False, "message": "El libro no existe"}
            if action.startswith("consulta"):
                return {"success": True, "found": True, "message": "Libro encontrado",
                        "book": book}
            if action.startswith("prestamo"):
                if book["estado"] == LENT:
                    return {"success": False, "message": f"El libro '{book['titulo']}' no está "
                            f"disponible. Fecha de devolución: {book['fecha_devolucion']}",
                            "book": book}
                today = datetime.date.today()
                book.update(estado=LENT, prestatario=str(message["borrower"]),
                            fecha_prestamo=today.isoformat(), fecha_devolucion=(
                                today + datetime.timedelta(days=LOAN_DAYS)).isoformat())
                if kind != "liar":
                    _write(path, document, in_place=kind == "breaks")
                return {"success": True, "message": "Préstamo exitoso", "book": book}
            if action.startswith("devolucion"):
                if book["estado"] != LENT:
                    return {"success": False, "message": "El libro no está prestado",
                            "book": book}
                book.update(estado=AVAILABLE, prestatario=None, fecha_prestamo=None,
                            fecha_devolucion=None)
                _write(path, document, in_place=kind == "breaks")
                return {"success": True, "message": "Devolución exitosa", "book": book}
            return {"success": False, "message": f"Acción desconocida: {message['action']}"}
    except Exception as error:  # the class's rule: the server always answers
        return {"success": False, "message": f"Error: {error}"}


def _answer(sock: zmq.Socket, kind: str, path: Path) -> None:
    while True:
        frame = sock.recv()
        sock.send(json.dumps(handle(kind, path, frame), ensure_ascii=False).encode())


def _worker(kind: str, path: str, backend: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.connect(backend)
    _answer(sock, kind, Path(path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--db", required=True)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    ctx = zmq.Context()
    front = ctx.socket(zmq.REP if args.workers == 0 else zmq.ROUTER)
    front.bind(f"tcp://127.0.0.1:{args.port}" if args.port else "tcp://127.0.0.1:*")
    endpoint = front.getsockopt_string(zmq.LAST_ENDPOINT)
    if args.workers == 0:
        print(f"serving on {endpoint}", flush=True)
        _answer(front, args.kind, Path(args.db))
        return
    back = ctx.socket(zmq.DEALER)
    port = back.bind_to_random_port("tcp://127.0.0.1")
    spawn = multiprocessing.get_context("spawn")
    for _ in range(args.workers):
        spawn.Process(target=_worker, daemon=True,
                      args=(args.kind, args.db, f"tcp://127.0.0.1:{port}")).start()
    print(f"serving on {endpoint}", flush=True)
    zmq.proxy(front, back)


if __name__ == "__main__":
    sys.exit(main())
