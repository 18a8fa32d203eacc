"""library.proto's messages and the ZeroMQ protocol's JSON objects, both ways, without I/O.

Field names are the same on both sides, so the conversion is by name: a request message's set
fields become the request object's, and a reply object fills a `Reply` (the stats object as JSON
text in `stats_json`, the one field a proto message cannot hold as it is).
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message

from libsrv.protocol import Action
from libsrv.transports import library_pb2

# each rpc of library.proto and the action it carries
RPCS: dict[str, Action] = {
    "Ping": Action.PING,
    "QueryIsbn": Action.QUERY_ISBN,
    "QueryTitle": Action.QUERY_TITLE,
    "LoanIsbn": Action.LOAN_ISBN,
    "LoanTitle": Action.LOAN_TITLE,
    "ReturnIsbn": Action.RETURN_ISBN,
    "Catalog": Action.CATALOG,
    "Snapshot": Action.SNAPSHOT,
    "Stats": Action.STATS,
}
RPC_OF: dict[Action, str] = {action: name for name, action in RPCS.items()}
_SERVICE = library_pb2.DESCRIPTOR.services_by_name["Library"]
# the request message class of each action's rpc
REQUEST_TYPES: dict[Action, type[Message]] = {
    action: getattr(library_pb2, _SERVICE.methods_by_name[name].input_type.name)
    for name, action in RPCS.items()
}


def _present(message: Message) -> dict[str, Any]:
    fields = {}
    for field in message.DESCRIPTOR.fields:
        if field.has_presence and not message.HasField(field.name):
            continue
        value = getattr(message, field.name)
        if field.message_type is not None:
            value = ([_book(v) for v in value] if field.is_repeated
                     else _book(value))
        elif field.is_repeated:
            value = list(value)
        fields[field.name] = value
    return fields


def _book(message: Message) -> dict[str, Any]:
    """A Book as the catalog's JSON has it: every field, None where unset."""
    book = {field.name: None for field in message.DESCRIPTOR.fields}
    book.update(_present(message))
    return book


def request_fields(message: Message) -> dict[str, Any]:
    """A request message's fields as the ZeroMQ request's: plain fields always, optional ones
    when set (an unset optional field is absent, as a missing JSON field is)."""
    return _present(message)


def request_message(action: Action | str, fields: dict[str, Any]) -> Message:
    """The request message of `action`'s rpc holding `fields` (those it has no field for are
    left out, as the ZeroMQ server ignores them). Raises KeyError for an unknown action,
    ValueError or TypeError for a field of the wrong type."""
    kind = REQUEST_TYPES[Action(action)]
    known = {field.name for field in kind.DESCRIPTOR.fields}
    return kind(**{k: v for k, v in fields.items() if k in known and v is not None})


_REPLY_FIELDS = frozenset(field.name for field in library_pb2.Reply.DESCRIPTOR.fields)
_BOOK_FIELDS = frozenset(field.name for field in library_pb2.Book.DESCRIPTOR.fields)


def _book_message(book: dict[str, Any]) -> library_pb2.Book:
    return library_pb2.Book(**{k: v for k, v in book.items()
                               if v is not None and k in _BOOK_FIELDS})


def reply_message(reply: dict[str, Any]) -> library_pb2.Reply:
    """A `Reply` message holding a ZeroMQ reply object (built field by field: protobuf's own
    json_format.ParseDict took 30 µs a reply, most of the conversion's cost)."""
    fields: dict[str, Any] = {}
    for name, value in reply.items():
        if name == "stats":
            fields["stats_json"] = json.dumps(value, ensure_ascii=False)
        elif value is None or name not in _REPLY_FIELDS:
            continue
        elif name == "book":
            fields["book"] = _book_message(value)
        elif name == "books":
            fields["books"] = [_book_message(book) for book in value]
        else:
            fields[name] = value
    return library_pb2.Reply(**fields)


def reply_object(message: library_pb2.Reply) -> dict[str, Any]:
    """The ZeroMQ reply object a `Reply` message holds (`book` None when absent, `stats`
    parsed back)."""
    reply = _present(message)
    reply.setdefault("book", None)
    if "stats_json" in reply:
        reply["stats"] = json.loads(reply.pop("stats_json"))
    return reply
