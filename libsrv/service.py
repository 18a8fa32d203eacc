"""Turns request frames into reply frames: parse, dispatch to the library rules and the storage
engine, count, and never raise. The sockets around it live in `libsrv.server`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from libsrv.library import Policy, answer_read, plan_write
from libsrv.messages import render
from libsrv.protocol import (
    Action,
    Code,
    ProtocolError,
    Request,
    encode_reply,
    make_reply,
    parse_request,
    peek_request,
)
from libsrv.stats import StatsBoard
from libsrv.storage import IdReused, LockBusy, Storage, StorageError

log = logging.getLogger("libsrv.service")
# Starts the ids the broker gives writes that came without one; no client id can hold it (ids
# with control characters are refused).
BROKER_KEY_MARK = "\x1f"


@dataclass(frozen=True, slots=True)
class Handled:
    """A reply ready to send, and what to log about it."""

    frame: bytes
    # the action's canonical name ("loan_isbn"), with " (class client)" when the request used
    # the class's Spanish names, or "invalid" for a request that did not parse
    action: str
    code: str


class Service:
    """One process's request handler. `worker` is the worker's number, from 1, or 0 for the
    single REP server. `feed_port` is where the server publishes changes (None: nowhere)."""

    def __init__(self, storage: Storage, policy: Policy, board: StatsBoard, worker: int = 0,
                 today: Callable[[], date] = date.today, feed_port: int | None = None) -> None:
        self.storage = storage
        self.feed_port = feed_port
        self.policy = policy
        self.board = board
        self.worker = worker
        self.row = max(0, worker - 1)
        self.today = today

    def handle(self, frames: list[bytes], key: bytes | None = None, *,
               wait: float | None = None) -> Handled | None:
        """The reply to one request message. Never raises.

        `key` is the broker's name for this request: a write whose client gave no id is
        remembered under it, so the broker may send it again (after its worker died) without
        it being applied twice. The reply does not show it.

        With `wait` (seconds), a write that finds the catalog lock held that long returns
        None, having done nothing: the caller answers other requests meanwhile and asks again
        later (or gives up with `locked_out`). Without it, a write waits up to the lock
        timeout and then answers INTERNAL."""
        try:
            request = parse_request(frames)
        except ProtocolError as error:
            message = render(error.key, self.policy.language(error.legacy), **error.params)
            reply = make_reply(Code.BAD_REQUEST, message, request_id=error.request_id)
            return self._finish(reply, "invalid", "invalid")
        keyed = key is not None and request.id is None and request.is_write
        if keyed:
            request = replace(request, id=BROKER_KEY_MARK + key.hex())
        label = str(request.action)
        try:
            reply = self._dispatch(request, wait)
        except LockBusy:
            return None
        except IdReused as error:
            reply = make_reply(Code.BAD_REQUEST,
                               render("id_reused", self.policy.language(request.legacy),
                                      id=error.request_id),
                               request_id=request.id)
        except StorageError as error:
            log.error("storage failed on %s: %s", label, error)
            reply = self.internal(str(error), request.id, request.legacy)
        except Exception as error:  # the last line of defence: a REQ client must get a reply
            log.exception("unexpected error on %s", label)
            reply = self.internal(f"unexpected {type(error).__name__}", request.id,
                                  request.legacy)
        if keyed:
            reply.pop("id", None)
        shown = f"{label} (class client)" if request.legacy else label
        return self._finish(reply, shown, label)

    def internal(self, reason: str, request_id: str | None,
                 legacy: bool = False) -> dict[str, Any]:
        return make_reply(Code.INTERNAL,
                          render("internal", self.policy.language(legacy), reason=reason),
                          request_id=request_id)

    def locked_out(self, frames: list[bytes], seconds: float) -> Handled:
        """The reply to a write that waited `seconds` for the catalog lock in vain: INTERNAL,
        nothing changed."""
        request = parse_request(frames)  # it parsed when it first came
        reply = self.internal(f"the catalog lock has been held by another program for more "
                              f"than {seconds:g} s; nothing was changed", request.id,
                              request.legacy)
        return self._finish(reply, str(request.action), str(request.action))

    def _dispatch(self, request: Request, wait: float | None = None) -> dict[str, Any]:
        action = request.action
        lang = self.policy.language(request.legacy)
        if action == Action.PING:
            return make_reply(Code.OK, render("pong", lang), request_id=request.id,
                              worker=self.worker, pid=os.getpid(),
                              serving=self.board.serving.value,
                              workers=max(1, self.board.workers))
        if action == Action.STATS:
            stats = self.board.snapshot()
            stats["books"] = len(self.storage.read())
            return make_reply(Code.OK, render("stats", lang), request_id=request.id,
                              stats=stats)
        if request.is_write:
            today = self.today()
            return self.storage.write(
                request, lambda catalog: plan_write(request, catalog, self.policy, today),
                wait=wait)
        reply = answer_read(request, self.storage.read(), self.policy)
        if action == Action.SNAPSHOT:
            # the page as of change number `seq`; the feed publishes every later change
            reply["seq"] = self.storage.seq
            reply["feed_port"] = self.feed_port
        return reply

    def _finish(self, reply: dict[str, Any], action: str, counted_as: str) -> Handled:
        try:
            frame = encode_reply(reply)
        except (UnicodeEncodeError, TypeError, ValueError) as error:
            reply = self.internal(f"reply could not be encoded ({type(error).__name__})",
                                  reply.get("id"))
            frame = encode_reply(reply)
        self.board.count(self.row, counted_as, reply["code"])
        return Handled(frame, action, reply["code"])


def internal_reply_frame(frames: list[bytes], lang: str | None, reason: str) -> bytes:
    """An INTERNAL reply frame built without a Service (the broker answers a request that
    killed two workers with it); echoes the request id when it can be read. `lang` as in
    `Policy`."""
    request_id, legacy = peek_request(frames)
    reply = make_reply(Code.INTERNAL,
                       render("internal", Policy(lang=lang).language(legacy), reason=reason),
                       request_id=request_id)
    return encode_reply(reply)


def refusal_frame(lang: str | None, key: str, **params: object) -> bytes:
    """A BAD_REQUEST reply frame built without a Service (the broker refuses a request of
    several frames with it before any worker sees it); `key` and `params` name the message
    as in `libsrv.messages`."""
    message = render(key, Policy(lang=lang).language(False), **params)
    return encode_reply(make_reply(Code.BAD_REQUEST, message))
