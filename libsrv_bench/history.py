"""The recorded history of a run: one `Record` per request, the format the load generator
writes, `samples.csv.gz` holds, and the verifier reads. No I/O."""

from __future__ import annotations

from typing import NamedTuple

from libsrv.protocol import Code

TIMEOUT = "TIMEOUT"  # the code recorded for a request that got no reply (after its retries)
BAD_REPLY = "BAD_REPLY"  # the code recorded for a reply its dialect could not read
REFUSED = "REFUSED"  # a refusal whose reason the dialect cannot tell: asserts nothing
# Replies that are not answers: with timeouts, the share --max-errors bounds
FAILURE_CODES = (Code.INTERNAL, Code.BAD_REQUEST, BAD_REPLY, REFUSED)


class Record(NamedTuple):
    """One request: who sent what, when (ns, `time.perf_counter_ns`), and what the reply said
    about the book."""

    client: int
    action: str
    isbn: str | None
    borrower: str | None
    t_intended: int
    t_send: int  # the first send; retries keep it
    t_recv: int | None  # None: no reply
    code: str  # the reply's code, TIMEOUT, or BAD_REPLY
    reply_isbn: str | None
    reply_borrower: str | None
    reply_state: str | None  # the book's `estado` in the reply
    attempts: int
    rid: str | None = None  # the request's id (None when sent without one)
    engine: int | None = None  # the ipyparallel engine that sent it (None: this machine)
    host: str | None = None  # that engine's host


FIELDS = Record._fields
