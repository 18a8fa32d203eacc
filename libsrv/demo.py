"""A scripted session of every operation, against a server started on a copy of a catalog.

It follows the class's scenarios: a query, a loan by title, the same book refused to a second
client, a loan of another book by that client, returns, and the error cases.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from libsrv.catalog import Catalog
from libsrv.client import LibraryClient, Reply
from libsrv.config import DEFAULT_WORKERS
from libsrv.defaults import DEFAULT_ENGINE
from libsrv.process import ServerProcess
from libsrv.protocol import Code
from libsrv.shipped import copy_shipped_catalog

QUIJOTE, SOMBRA, CRIMEN = "9788437604947", "9788497592208", "9780140449266"


def _show(who: str, what: str, call: Callable[[], Reply]) -> Reply:
    reply = call()
    mark = "✓" if reply.success else "✗"
    print(f"{who:>9} │ {what:<44} │ {mark} {reply.code:<11} {reply.message}")
    return reply


def run_demo(catalog: Path | None = None, *, workers: int = DEFAULT_WORKERS,
             storage: str = DEFAULT_ENGINE) -> int:
    """Run the session on a copy of `catalog` (default: the shipped one); prints every request
    and reply. Returns 0 when every step answered as the scenario expects."""
    with tempfile.TemporaryDirectory(prefix="libsrv-demo-") as tmp:
        db = Path(tmp) / "catalog.json"
        if catalog is None:
            copy_shipped_catalog(db)
        else:
            shutil.copy(catalog, db)
        source = catalog or "the shipped catalog"
        print(f"Starting a server ({workers} workers, {storage} storage) on a copy of {source}")
        with ServerProcess(db, workers=workers, storage=storage) as server:
            print(f"Server ready at {server.endpoint}\n")
            with LibraryClient(server.endpoint) as samuel, \
                    LibraryClient(server.endpoint) as guillermo:
                steps = [
                    _show("Samuel", "ping", samuel.ping),
                    _show("Samuel", f"query_isbn {QUIJOTE}", lambda: samuel.query_isbn(QUIJOTE)),
                    _show("Samuel", "query_title 'sombra'", lambda: samuel.query_title("sombra")),
                    _show("Samuel", "loan_title 'La sombra del viento'",
                          lambda: samuel.loan_title("La sombra del viento", "Samuel")),
                    _show("Guillermo", "loan_title 'La sombra del viento'",
                          lambda: guillermo.loan_title("La sombra del viento", "Guillermo")),
                    _show("Guillermo", f"loan_isbn {CRIMEN}",
                          lambda: guillermo.loan_isbn(CRIMEN, "Guillermo")),
                    _show("Guillermo", f"loan_isbn {QUIJOTE}",
                          lambda: guillermo.loan_isbn(QUIJOTE, "Guillermo")),
                    _show("Samuel", f"return_isbn {SOMBRA}", lambda: samuel.return_isbn(SOMBRA)),
                    _show("Samuel", f"return_isbn {SOMBRA} (again)",
                          lambda: samuel.return_isbn(SOMBRA)),
                    _show("Samuel", "query_isbn 9780000000002 (unknown)",
                          lambda: samuel.query_isbn("9780000000002")),
                    _show("Samuel", "query_isbn 12345 (malformed)",
                          lambda: samuel.query_isbn("12345")),
                    _show("Samuel", "catalog (first 5)", lambda: samuel.catalog(limit=5)),
                ]
                stats = samuel.stats().raw["stats"]
            print(f"\nstats: {stats['requests']} requests, by code {stats['by_code']}, "
                  f"workers {stats['worker_pids']}")
            code = server.stop()
        done, taken, not_lent = Code.OK, Code.UNAVAILABLE, Code.NOT_LOANED
        expected = [done, done, done, done, taken, done, done, done, not_lent, Code.NOT_FOUND,
                    Code.BAD_REQUEST, done]
        final = Catalog.from_bytes(db.read_bytes())
        print("\nThe catalog file after a clean stop:")
        for isbn in (QUIJOTE, SOMBRA, CRIMEN):
            book = final.get(isbn) or {}
            print(f"  {isbn} {book.get('titulo')!r:32} {book.get('estado'):12} "
                  f"{book.get('prestatario')}")
    ok = code == 0 and [s.code for s in steps] == expected
    print("\ndemo " + ("finished: every reply as expected." if ok else "FAILED"))
    return 0 if ok else 1
