"""The library's rules: what each query, loan and return answers and changes. No I/O.

`answer_read` answers the read-only actions from a catalog; `plan_write` decides a loan or
return and returns the reply together with the book's new record, which the storage engine
persists before the reply is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from libsrv.catalog import AVAILABLE, LENT, Book, Catalog
from libsrv.decision import Outcome
from libsrv.defaults import DEFAULT_LOAN_DAYS, DEFAULT_TITLE_LOAN_DAYS
from libsrv.domain import isbn13_is_valid
from libsrv.messages import render
from libsrv.protocol import QUERY_ACTIONS, Action, Code, Request, make_reply


@dataclass(frozen=True, slots=True)
class Policy:
    """Settings that shape replies: the loan periods in days (by ISBN, by title: the class's
    code gave 7 and 14) and the message language (None: Spanish to a request that used the
    class's Spanish action names, else English)."""

    loan_days: int = DEFAULT_LOAN_DAYS
    lang: str | None = None
    title_loan_days: int = DEFAULT_TITLE_LOAN_DAYS

    def language(self, legacy: bool) -> str:
        """The language of the reply to a request (`legacy`: it used a Spanish action name)."""
        return self.lang or ("es" if legacy else "en")


def _reply(policy: Policy, request: Request, code: Code, key: str, *,
           book: Book | None = None, **params: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if request.action in QUERY_ACTIONS:
        extra["found"] = book is not None
    return make_reply(code, render(key, policy.language(request.legacy), **params), book=book,
                      request_id=request.id, **extra)


def _unknown_isbn(policy: Policy, request: Request) -> dict[str, Any]:
    isbn = request.isbn or ""
    if isbn13_is_valid(isbn):
        return _reply(policy, request, Code.NOT_FOUND, "isbn_not_found", isbn=isbn)
    return _reply(policy, request, Code.BAD_REQUEST, "bad_isbn", isbn=isbn)


def answer_read(request: Request, catalog: Catalog, policy: Policy) -> dict[str, Any]:
    """Reply to query_isbn, query_title, catalog or snapshot (a catalog page; the caller adds
    what the page reflects)."""
    if request.action == Action.QUERY_ISBN:
        book = catalog.get(request.isbn or "")
        if book is None:
            return _unknown_isbn(policy, request)
        return _reply(policy, request, Code.OK, "found", book=book, title=book["titulo"])
    if request.action == Action.QUERY_TITLE:
        text = request.title or ""
        books, total = catalog.search_title(text, request.offset, request.limit)
        if total == 0:
            return _reply(policy, request, Code.NOT_FOUND, "title_not_found", text=text)
        reply = _reply(policy, request, Code.OK, "found_many", book=books[0] if books else None,
                       count=total, text=text)
        reply["found"] = True
        reply["books"] = books
        reply["total"] = total
        return reply
    if request.action in (Action.CATALOG, Action.SNAPSHOT):
        books = catalog.page(request.offset, request.limit)
        total = len(catalog)
        lang = policy.language(request.legacy)
        if books:
            message = render("catalog_page", lang, first=request.offset + 1,
                             last=request.offset + len(books), total=total)
        else:
            message = render("catalog_past_end", lang, offset=request.offset, total=total)
        return make_reply(Code.OK, message, books=books, request_id=request.id, total=total,
                          offset=request.offset)
    raise ValueError(f"{request.action} is not a read action")


def _lend(policy: Policy, request: Request, book: Book, today: date) -> Outcome:
    borrower = request.borrower or ""
    days = policy.title_loan_days if request.action == Action.LOAN_TITLE else policy.loan_days
    due = (today + timedelta(days=days)).isoformat()
    lent = dict(book, estado=LENT, prestatario=borrower, fecha_prestamo=today.isoformat(),
                fecha_devolucion=due)
    reply = _reply(policy, request, Code.OK, "loaned", book=lent, title=book["titulo"],
                   borrower=borrower, due=due)
    return Outcome(reply, lent)


def _refuse_taken(policy: Policy, request: Request, book: Book) -> Outcome:
    due = book["fecha_devolucion"] or "?"
    return Outcome(_reply(policy, request, Code.UNAVAILABLE, "unavailable", book=book,
                          title=book["titulo"], due=due))


def plan_write(request: Request, catalog: Catalog, policy: Policy, today: date) -> Outcome:
    """Decide a loan or return against the current catalog, without changing it."""
    if request.action == Action.LOAN_ISBN:
        book = catalog.get(request.isbn or "")
        if book is None:
            return Outcome(_unknown_isbn(policy, request))
        if book["estado"] != AVAILABLE:
            return _refuse_taken(policy, request, book)
        return _lend(policy, request, book, today)
    if request.action == Action.LOAN_TITLE:
        copies = catalog.with_title(request.title or "")
        if not copies:
            return Outcome(_reply(policy, request, Code.NOT_FOUND, "title_not_found",
                                  text=request.title))
        for book in copies:
            if book["estado"] == AVAILABLE:
                return _lend(policy, request, book, today)
        soonest = min(copies, key=lambda b: b["fecha_devolucion"] or "9999")
        return _refuse_taken(policy, request, soonest)
    if request.action == Action.RETURN_ISBN:
        book = catalog.get(request.isbn or "")
        if book is None:
            return Outcome(_unknown_isbn(policy, request))
        if book["estado"] != LENT:
            return Outcome(_reply(policy, request, Code.NOT_LOANED, "not_loaned", book=book,
                                  title=book["titulo"]))
        back = dict(book, estado=AVAILABLE, prestatario=None, fecha_prestamo=None,
                    fecha_devolucion=None)
        return Outcome(_reply(policy, request, Code.OK, "returned", book=back,
                              title=book["titulo"]), back)
    raise ValueError(f"{request.action} is not a write action")
