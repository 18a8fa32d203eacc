"""How long big catalogs take on this machine: the figures docs/bench.md quotes.

    .venv/bin/python scripts/catalog_timings.py --books 1000000

Measures, for a generated catalog of `--books` books: generating it, parsing it (what every
process does at start-up), writing it in the class's two-space format and one book per line
(what the kit writes past 10,000 books), a server with two workers becoming ready, and a
query by ISBN against a query by title on it. Medians of `--repeat` tries where it is cheap.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from libsrv.catalog import DOCUMENT_KEY, Catalog, document_bytes
from libsrv.client import LibraryClient
from libsrv.generate import make_books, write_catalog
from libsrv.process import ServerProcess


def seconds(work: Callable[[], object], repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=1_000_000,
                        help="catalog size (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="tries of the cheap steps; the median is shown (default 3)")
    args = parser.parse_args()
    per_million = 1_000_000 / args.books
    with tempfile.TemporaryDirectory(prefix="libsrv-timings-") as tmp:
        db = Path(tmp) / "catalog.json"
        rows = [("generate", seconds(lambda: write_catalog(db, args.books, seed=1)))]
        raw = db.read_bytes()
        books = make_books(args.books, seed=1)
        rows.append(("parse (each process at start-up)",
                     seconds(lambda: Catalog.from_bytes(raw), args.repeat)))
        rows.append(("write, one book per line (the kit past 10,000 books)",
                     seconds(lambda: document_bytes(books), args.repeat)))
        rows.append(("write, two-space indent (the class's format)", seconds(
            lambda: json.dumps({DOCUMENT_KEY: books}, ensure_ascii=False, indent=2),
            args.repeat)))
        server = ServerProcess(db, workers=2, ready_timeout=600)
        rows.append(("server with 2 workers ready", seconds(server.start)))
        try:
            with LibraryClient(server.endpoint, timeout=60, retries=0) as lib:
                middle = books[len(books) // 2]
                isbn, title = middle["ISBN"], middle["titulo"]
                by_isbn = seconds(lambda: lib.query_isbn(isbn), 21)
                by_title = seconds(lambda: lib.query_title(title), 5)
        finally:
            server.stop()
    print(f"{args.books:,} books, {len(raw) / 1e6:.0f} MB\n")
    print("| step | seconds | per million books |\n|---|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.2f} | {value * per_million:.1f} s |")
    print(f"| query by ISBN (median of 21) | {by_isbn * 1e3:.2f} ms | |")
    print(f"| query by title (median of 5) | {by_title * 1e3:.1f} ms | |")


if __name__ == "__main__":
    main()
