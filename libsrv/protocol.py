"""The wire protocol: actions, reply codes, request parsing and reply building.

This module does no I/O. A request is one ZeroMQ frame holding a UTF-8 JSON object; a reply is
one frame holding a JSON object. `parse_request` turns frames into a validated `Request` or raises
`ProtocolError`; `make_reply` and `encode_reply` build the answer. Every action name and reply code
in the kit is defined here and imported from here.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from libsrv.domain import fold, has_surrogates, normalize_isbn

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_BORROWER_CHARS = 100
MAX_TITLE_CHARS = 300
MAX_ISBN_CHARS = 32
MAX_ID_CHARS = 128
DEFAULT_PAGE = 50
MAX_PAGE = 1000
_MAX_INT_DIGITS = 18  # offsets and limits; longer numbers are refused before int() sees them


class Action(StrEnum):
    PING = "ping"
    QUERY_ISBN = "query_isbn"
    QUERY_TITLE = "query_title"
    LOAN_ISBN = "loan_isbn"
    LOAN_TITLE = "loan_title"
    RETURN_ISBN = "return_isbn"
    CATALOG = "catalog"
    SNAPSHOT = "snapshot"  # a catalog page and the number of the last change it reflects
    STATS = "stats"


class Code(StrEnum):
    OK = "OK"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    NOT_LOANED = "NOT_LOANED"
    BAD_REQUEST = "BAD_REQUEST"
    INTERNAL = "INTERNAL"


WRITE_ACTIONS = frozenset({Action.LOAN_ISBN, Action.LOAN_TITLE, Action.RETURN_ISBN})
QUERY_ACTIONS = frozenset({Action.QUERY_ISBN, Action.QUERY_TITLE})

# The fields each action needs; anything else in a request is ignored.
REQUIRED_FIELDS: dict[Action, tuple[str, ...]] = {
    Action.PING: (),
    Action.QUERY_ISBN: ("isbn",),
    Action.QUERY_TITLE: ("title",),
    Action.LOAN_ISBN: ("isbn", "borrower"),
    Action.LOAN_TITLE: ("title", "borrower"),
    Action.RETURN_ISBN: ("isbn",),
    Action.CATALOG: (),
    Action.SNAPSHOT: (),
    Action.STATS: (),
}


# Fields a request may name the Spanish way (as the catalog's own fields are named): it is told
# the field to use rather than that one is missing.
FIELD_MISNAMES = {"title": "titulo", "borrower": "prestatario"}

# The class's client speaks Spanish action names; they are aliases, compared folded.
LEGACY_ACTIONS: dict[str, Action] = {
    fold("Consulta por ISBN"): Action.QUERY_ISBN,
    fold("Consulta por Titulo"): Action.QUERY_TITLE,
    fold("Prestamo por ISBN"): Action.LOAN_ISBN,
    fold("Prestamo por Titulo"): Action.LOAN_TITLE,
    fold("Devolucion por ISBN"): Action.RETURN_ISBN,
}


class ProtocolError(Exception):
    """A request that cannot be served as sent. Always answered with BAD_REQUEST.

    `key` names the human message (see `libsrv.messages`), `params` fill it in, and
    `request_id` is the request's id when it could be read, so the reply can echo it.
    """

    def __init__(self, key: str, request_id: str | None = None, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
        self.request_id = request_id
        self.legacy = False  # set when the request named its action the class's Spanish way


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request. `isbn` is normalised (no hyphens or spaces); text is trimmed."""

    action: Action
    isbn: str | None = None
    title: str | None = None
    borrower: str | None = None
    id: str | None = None
    offset: int = 0
    limit: int = DEFAULT_PAGE
    legacy: bool = False

    @property
    def is_write(self) -> bool:
        return self.action in WRITE_ACTIONS

    def fingerprint(self) -> str:
        """What must match for a repeated `id` to count as the same request."""
        title = fold(self.title) if self.title is not None else ""
        return "\x1f".join((self.action, self.isbn or "", title, self.borrower or ""))


# ---------------------------------------------------------------- parsing


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError("integer too long")
    return int(text)


def _bounded_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_bounded_int,
                            parse_float=_bounded_float)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _decode_json(frame: bytes) -> Any:
    return _DECODER.decode(frame.decode("utf-8"))  # strict UTF-8: bad bytes raise


def _has_control(text: str) -> bool:
    if text.isprintable():  # the common case: no Cc, Cf, Zl, Zp (nor other unprintables)
        return False
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def _text_field(obj: dict[str, Any], name: str, limit: int, rid: str | None) -> str:
    value = obj.get(name)
    if value is None:
        given = FIELD_MISNAMES.get(name)
        if given is not None and given in obj:  # the class's Spanish name for the field
            raise ProtocolError("use_field", rid, field=name, given=given)
        raise ProtocolError("missing_field", rid, field=name)
    if not isinstance(value, str):
        raise ProtocolError("wrong_type", rid, field=name, expected="string")
    if has_surrogates(value):
        raise ProtocolError("bad_text", rid, field=name)
    value = value.strip()
    if not value:
        raise ProtocolError("blank_field", rid, field=name)
    if len(value) > limit:
        raise ProtocolError("too_long", rid, field=name, limit=limit)
    if _has_control(value):
        raise ProtocolError("control_chars", rid, field=name)
    return value


def _int_field(obj: dict[str, Any], name: str, default: int, low: int, high: int,
               rid: str | None) -> int:
    value = obj.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("wrong_type", rid, field=name, expected="integer")
    if not low <= value <= high:
        raise ProtocolError("out_of_range", rid, field=name, low=low, high=high)
    return value


def _request_id(obj: dict[str, Any]) -> str | None:
    rid = obj.get("id")
    if rid is None:
        return None
    if (not isinstance(rid, str) or not rid or len(rid) > MAX_ID_CHARS
            or has_surrogates(rid) or _has_control(rid)):
        raise ProtocolError("bad_id", None, limit=MAX_ID_CHARS)
    return rid


def resolve_action(name: object) -> tuple[Action, bool] | None:
    """Map a wire action name (ours or the class's Spanish alias) to (Action, legacy)."""
    if not isinstance(name, str) or len(name) > 64:
        return None
    try:
        return Action(name), False
    except ValueError:
        pass
    legacy = LEGACY_ACTIONS.get(fold(name)) if not has_surrogates(name) else None
    return (legacy, True) if legacy is not None else None


def parse_request(frames: list[bytes]) -> Request:
    """Validate one request message. Raises ProtocolError, never anything else."""
    if len(frames) != 1:
        raise ProtocolError("frames", count=len(frames))
    frame = frames[0]
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError("too_big", limit=MAX_FRAME_BYTES)
    try:
        obj = _decode_json(frame)
    except UnicodeDecodeError:
        raise ProtocolError("bad_utf8") from None
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json") from None
    if not isinstance(obj, dict):
        raise ProtocolError("not_object")
    rid = _request_id(obj)
    version = obj.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError("bad_version", rid, version=PROTOCOL_VERSION)
    if "action" not in obj:
        raise ProtocolError("missing_field", rid, field="action")
    resolved = resolve_action(obj["action"])
    if resolved is None:
        shown = repr(obj["action"])
        raise ProtocolError("unknown_action", rid,
                            given=shown if len(shown) <= 40 else shown[:37] + "...",
                            known=", ".join(a.value for a in Action))
    action, legacy = resolved
    try:
        return Request(action=action, id=rid, legacy=legacy, **_fields(obj, action, rid))
    except ProtocolError as error:
        error.legacy = legacy
        raise


def _fields(obj: dict[str, Any], action: Action, rid: str | None) -> dict[str, Any]:
    """The validated fields `action` needs from the request object."""
    fields: dict[str, Any] = {}
    for name in REQUIRED_FIELDS[action]:
        if name == "isbn":
            raw = _text_field(obj, "isbn", MAX_ISBN_CHARS, rid)
            fields["isbn"] = normalize_isbn(raw)
            if not fields["isbn"]:
                raise ProtocolError("blank_field", rid, field="isbn")
        elif name == "title":
            fields["title"] = _text_field(obj, "title", MAX_TITLE_CHARS, rid)
        elif name == "borrower":
            fields["borrower"] = " ".join(
                _text_field(obj, "borrower", MAX_BORROWER_CHARS, rid).split())
    if action in (Action.CATALOG, Action.SNAPSHOT, Action.QUERY_TITLE):
        fields["offset"] = _int_field(obj, "offset", 0, 0, 10**12, rid)
        fields["limit"] = _int_field(obj, "limit", DEFAULT_PAGE, 1, MAX_PAGE, rid)
    return fields


def peek_request(frames: list[bytes]) -> tuple[str | None, bool]:
    """Best effort, for a request that was not parsed or not answered: its id (so an error can
    echo it) and whether it named its action the class's Spanish way."""
    try:
        if len(frames) == 1 and len(frames[0]) <= MAX_FRAME_BYTES:
            obj = _decode_json(frames[0])
            if isinstance(obj, dict):
                resolved = resolve_action(obj.get("action"))
                return _request_id(obj), bool(resolved and resolved[1])
    except (ValueError, RecursionError, ProtocolError):
        pass
    return None, False


# ---------------------------------------------------------------- replies


def make_reply(code: Code, message: str, *, book: dict[str, Any] | None = None,
               books: list[dict[str, Any]] | None = None, request_id: str | None = None,
               found: bool | None = None, **extra: Any) -> dict[str, Any]:
    """Build a reply object. `found` is set on queries, as the class's page expects."""
    reply: dict[str, Any] = {
        "success": code == Code.OK,
        "code": str(code),
        "message": message,
        "book": book,
        "books": books if books is not None else [],
    }
    if found is not None:
        reply["found"] = found
    if request_id is not None:
        reply["id"] = request_id
    reply.update(extra)
    return reply


def encode_reply(reply: dict[str, Any]) -> bytes:
    return _ENCODER.encode(reply).encode("utf-8")


def encode_request(action: Action | str, **fields: Any) -> bytes:
    """Encode a request frame (used by clients). Fields that are None are left out."""
    body: dict[str, Any] = {"action": str(action), "v": PROTOCOL_VERSION}
    body.update({k: v for k, v in fields.items() if v is not None})
    return _ENCODER.encode(body).encode("utf-8")


def decode_reply(frame: bytes) -> dict[str, Any]:
    """Decode a reply frame. Raises ValueError when it is not a reply object."""
    obj = json.loads(frame.decode("utf-8"))
    if not isinstance(obj, dict) or "success" not in obj or "code" not in obj:
        raise ValueError("not a reply object")
    return obj
