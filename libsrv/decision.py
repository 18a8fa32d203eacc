"""The contract between the library's rules and the storage engines: a write's decision.

The rules (`libsrv.library.plan_write`) look at a catalog and return an `Outcome`; a storage
engine runs such a `Decide` function with the catalog lock held and persists its change before
the reply goes out. Neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libsrv.catalog import Book, Catalog


@dataclass(frozen=True, slots=True)
class Outcome:
    """A write's reply, and the book's new record when the catalog changes (else None)."""

    reply: dict[str, Any]
    change: Book | None = None


Decide = Callable[[Catalog], Outcome]
