"""``python -m libsrv watch``: print every change to the catalog as the server publishes it."""

from __future__ import annotations

import queue
from collections.abc import Callable

from libsrv.catalog import LENT
from libsrv.live import SILENT_SECONDS, Change, LiveCatalog


def describe_change(change: Change) -> str:
    """One line for a change: its number, the action, the book and its new state."""
    book = change.book
    if book.get("estado") == LENT:
        state = f"lent to {book.get('prestatario')} until {book.get('fecha_devolucion')}"
    else:
        state = "available"
    return (f"#{change.seq:<7} {change.action or '?':<12} {change.isbn}  {state:<40} "
            f"{book.get('titulo', '')}")


def watch(endpoint: str, *, isbn: str | None = None, count: int | None = None,
          timeout: float | None = None, show: Callable[[str], None] = print) -> int:
    """Show changes (of one book with `isbn`) until `count` were shown, `timeout` seconds
    passed without one, or Ctrl-C. Returns how many were shown."""
    lines: queue.Queue[str] = queue.Queue()

    def on_change(change: Change) -> None:
        if isbn is None or change.isbn == isbn:
            lines.put(describe_change(change))

    watched: list[LiveCatalog] = []  # set once the copy exists: its first snapshot comes before

    def on_resync(seq: int) -> None:
        if watched and watched[0].silent:
            lines.put(f"-- the feed is silent (no heartbeat for {SILENT_SECONDS:g} s): the "
                      f"catalog as of change #{seq}, from a snapshot --")
        else:
            lines.put(f"-- snapshot: the catalog as of change #{seq}; changes from here on --")

    shown = 0
    with LiveCatalog(endpoint, on_change=on_change, on_resync=on_resync) as live:
        watched.append(live)
        show(f"watching {live.feed} (changes of {isbn or 'every book'}); Ctrl-C stops")
        while count is None or shown < count:
            try:
                line = lines.get(timeout=timeout if timeout is not None else 0.5)
            except queue.Empty:
                if timeout is not None:
                    break
                if live.error is not None:
                    raise live.error from None
                continue
            show(line)
            shown += not line.startswith("--")
    return shown
