"""How the bench speaks to a server: the kit's protocol, the class's, or a group's own.

A dialect turns one of the kit's operations (an `Action` and its fields: ``isbn``, ``title``,
``borrower``) into the bytes of one request frame, and the bytes of the reply into an `Outcome`:
one of the codes below and the book record the reply showed, if any. It does no I/O, so the load
generator stays as concurrent as it is with the kit's own protocol: every client translates its
own requests.

The outcomes the verifier reads (`OUTCOMES`):

==============  =====================================================================
``OK``          done; the book shown (if any) is the record after it
``UNAVAILABLE`` a loan refused because the book is lent (evidence: the book was lent)
``NOT_LOANED``  a return refused because the book is not lent (evidence: it was available)
``NOT_FOUND``   no such book
``BAD_REQUEST`` the server says the request was malformed
``INTERNAL``    an error: a write may or may not have taken effect
``BAD_REPLY``   a reply the dialect cannot read: as an error, outcome unknown
``REFUSED``     refused, for a reason the dialect cannot tell: asserts nothing
==============  =====================================================================

A group's own protocol is a class in a file of theirs (``--dialect groups/g3.py:Dialect``):
subclass `Dialect`, set `name` and `actions`, write `request` and `reply`. Say only what the
reply proves: a refusal whose reason you cannot tell is ``REFUSED``, not ``UNAVAILABLE``.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, ClassVar

from libsrv.catalog import AVAILABLE, LENT
from libsrv.domain import fold
from libsrv.protocol import Action, Code, encode_request
from libsrv_bench.history import BAD_REPLY, REFUSED

OUTCOMES = frozenset({Code.OK, Code.UNAVAILABLE, Code.NOT_LOANED, Code.NOT_FOUND,
                      Code.BAD_REQUEST, Code.INTERNAL, BAD_REPLY, REFUSED})
DEFAULT_DIALECT = "kit"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a reply said: one of `OUTCOMES`, and the book record it showed (a dict with at
    least ``ISBN`` and ``estado``), or None."""

    code: str
    book: dict[str, Any] | None = None


class Dialect:
    """The kit's own protocol (docs/protocol.md): requests carry an id, replies a code.

    Subclasses override `name`, `actions`, `ids`, `request` and `reply`. Both must be pure
    (the same arguments, the same answer, no I/O): the load generator calls `request` for
    every request it sends and `reply` for every reply once the run is over."""

    name = "kit"
    # the operations this dialect can send; a workload needing another one is refused up front
    actions: frozenset[Action] = frozenset(Action)
    # requests carry the bench's id, which a server may remember (so retries are safe)
    ids = True
    # the server can list its catalog (the `catalog` action); else the bench needs --catalog
    lists_catalog = True

    def request(self, action: Action, fields: dict[str, str], rid: str | None) -> bytes:
        body = _kit_request(action, tuple(fields.items()))
        if rid is None:
            return body
        return b"%s,\"id\":%s}" % (body[:-1], json.dumps(rid).encode())

    def reply(self, action: Action, fields: dict[str, str], frame: bytes) -> Outcome:
        obj = _json_object(frame)
        if obj is None or obj.get("code") not in _KIT_CODES:
            return Outcome(BAD_REPLY)
        return Outcome(str(obj["code"]), _book(obj.get("book")))


_KIT_CODES = frozenset(str(code) for code in Code)


@lru_cache(maxsize=1 << 16)
def _kit_request(action: Action, fields: tuple[tuple[str, str], ...]) -> bytes:
    """A request without its id: the same few thousand are sent again and again."""
    return encode_request(action, **dict(fields))


class ClassDialect(Dialect):
    """The class report's protocol: Spanish action names, fields ``isbn``, ``title`` and
    ``borrower``, no ids, replies ``{"success", "found", "message", "book"}`` with no code.

    What it can read: a success, and the book the reply shows; a query's ``found``; a refused
    loan that shows the book lent (or says it is not available), a refused return that shows
    it available (or says it is not lent); a message that names an error. Any other refusal is
    ``REFUSED``: it asserts nothing."""

    name = "class"
    ACTION_NAMES: ClassVar[dict[Action, str]] = {
        Action.QUERY_ISBN: "Consulta por ISBN",
        Action.QUERY_TITLE: "Consulta por Titulo",
        Action.LOAN_ISBN: "Prestamo por ISBN",
        Action.LOAN_TITLE: "Prestamo por Titulo",
        Action.RETURN_ISBN: "Devolucion por ISBN",
    }
    actions = frozenset(ACTION_NAMES)
    ids = False
    lists_catalog = False
    # folded phrases (no accents, lower case) that say why, when the reply shows no book
    SAYS_LENT = ("no esta disponible", "ya esta prestado", "not available")
    SAYS_NOT_LENT = ("no esta prestado", "not on loan")
    SAYS_MISSING = ("no existe", "no encontrado", "no se encontro", "not found", "no book")
    SAYS_ERROR = ("error", "could not", "no pudo")
    # a write refused, the code that names why, and the evidence for it: the state the book
    # shown must be in, or (no book shown) the phrases that say so
    REFUSALS: ClassVar[dict[Action, tuple[str, str, tuple[str, ...]]]] = {
        Action.LOAN_ISBN: (Code.UNAVAILABLE, LENT, SAYS_LENT),
        Action.LOAN_TITLE: (Code.UNAVAILABLE, LENT, SAYS_LENT),
        Action.RETURN_ISBN: (Code.NOT_LOANED, AVAILABLE, SAYS_NOT_LENT),
    }

    def request(self, action: Action, fields: dict[str, str], rid: str | None) -> bytes:
        return json.dumps({"action": self.ACTION_NAMES[action], **fields},
                          ensure_ascii=False).encode()

    def reply(self, action: Action, fields: dict[str, str], frame: bytes) -> Outcome:
        obj = _json_object(frame)
        if obj is None or not isinstance(obj.get("success"), bool):
            return Outcome(BAD_REPLY)
        book = _book(obj.get("book"))
        message = fold(obj["message"]) if isinstance(obj.get("message"), str) else ""
        if obj.get("found") is False:
            return Outcome(Code.NOT_FOUND)
        if obj["success"]:
            return Outcome(Code.OK, book)
        if book is None and _says(message, self.SAYS_MISSING):
            return Outcome(Code.NOT_FOUND)
        refusal = self.REFUSALS.get(action)
        if refusal is not None:
            code, state, phrases = refusal
            shown = book["estado"] == state if book is not None else _says(message, phrases)
            if shown:
                return Outcome(code, book)
        if _says(message, self.SAYS_ERROR):
            return Outcome(Code.INTERNAL)
        return Outcome(REFUSED, book)


def _says(message: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in message for phrase in phrases)


def _json_object(frame: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _book(value: object) -> dict[str, Any] | None:
    """A book record the verifier can read (ISBN and a known state), else None."""
    if isinstance(value, dict) and isinstance(value.get("ISBN"), str) and \
            value.get("estado") in (LENT, AVAILABLE):
        return value
    return None


class DialectError(ValueError):
    """A dialect that cannot be found or used; the message says why."""


BUILT_IN: dict[str, type[Dialect]] = {"kit": Dialect, "class": ClassDialect}


@cache
def dialect_named(spec: str) -> Dialect:
    """``kit``, ``class``, or ``FILE.py:Name`` (a `Dialect` subclass in a file of yours)."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        raise DialectError(f"unknown dialect {spec!r}: use {', '.join(BUILT_IN)} or "
                           "FILE.py:ClassName")
    file = Path(path)
    if not file.is_file():
        raise DialectError(f"dialect file {file} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"libsrv_dialect_{file.stem}", file)
    if module_spec is None or module_spec.loader is None:
        raise DialectError(f"cannot load {file} as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # the group's own code: any error is theirs, said in one line
        raise DialectError(f"{file} failed to load: {type(error).__name__}: {error}") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Dialect)):
        raise DialectError(f"{file} has no Dialect subclass named {name!r} (subclass "
                           "libsrv_bench.dialects.Dialect)")
    return cls()


def check_actions(dialect: Dialect, needed: set[Action]) -> None:
    """Raise DialectError when the workload needs operations the dialect cannot send."""
    missing = sorted(str(a) for a in needed - dialect.actions)
    if missing:
        raise DialectError(f"the {dialect.name} dialect cannot send {', '.join(missing)}; "
                           "choose a workload without them")
