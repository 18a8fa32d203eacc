"""A client run inside a lab host (``ip netns exec HOST python -m tests.netclient MODE ...``);
prints its results as one JSON line."""

from __future__ import annotations

import json
import os
import sys
import time

from libsrv.client import LibraryClient, ServerUnreachable


def every_operation(endpoint: str, name: str) -> dict:
    with LibraryClient(endpoint, timeout=5, retries=2) as lib:
        isbn = "9788437604947" if name == "c1" else "9780140449266"
        replies = [lib.ping(), lib.query_isbn(isbn), lib.query_title("la"),
                   lib.loan_isbn(isbn, name), lib.return_isbn(isbn),
                   lib.loan_title("Rayuela" if name == "c1" else "Nada", name),
                   lib.catalog(limit=5), lib.stats()]
    return {"codes": [r.code for r in replies], "pid": replies[0].raw.get("pid")}


def race(endpoint: str, name: str, isbn: str, at: float) -> dict:
    with LibraryClient(endpoint, timeout=5, retries=2) as lib:
        lib.ping()  # connected before the start signal
        while time.time() < at:
            time.sleep(0.0005)
        reply = lib.loan_isbn(isbn, name)
    return {"code": reply.code, "borrower": (reply.book or {}).get("prestatario")}


def own_books(endpoint: str, name: str, isbns: list[str], rounds: int,
              progress: str) -> dict:
    """Alternate loan/return on books only this client touches, retrying through outages."""
    history = []
    with LibraryClient(endpoint, timeout=1.0, retries=30) as lib:
        for n in range(rounds):
            for isbn in isbns:
                kind = "loan" if n % 2 == 0 else "return"
                start = time.perf_counter_ns()
                try:
                    reply = lib.loan_isbn(isbn, name) if kind == "loan" else lib.return_isbn(isbn)
                    code, borrower = reply.code, (reply.book or {}).get("prestatario")
                except ServerUnreachable:
                    code, borrower = "TIMEOUT", None
                history.append([isbn, kind, code, start, time.perf_counter_ns(), borrower])
                with open(progress + ".tmp", "w") as out:
                    out.write(str(len(history)))
                os.replace(progress + ".tmp", progress)
    return {"history": history}


def main() -> None:
    mode, endpoint, name, *rest = sys.argv[1:]
    if mode == "ops":
        result = every_operation(endpoint, name)
    elif mode == "race":
        result = race(endpoint, name, rest[0], float(rest[1]))
    else:
        result = own_books(endpoint, name, rest[0].split(","), int(rest[1]), rest[2])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
