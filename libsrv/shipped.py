"""The catalog shipped inside the package, and the default catalog file a server uses.

The shipped copy is read with `importlib.resources`, so it is found however the package was
installed (a checkout, a wheel, a zip). It is never written to: a server works on a file of its
own, by default ``data/catalog.json`` in the folder it was started from, which `ensure_default`
creates from the shipped copy the first time.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from libsrv.config import DEFAULT_DB

SHIPPED_NAME = "catalog.json"


def shipped_catalog_bytes() -> bytes:
    """The shipped catalog document: the class's books and more, all available."""
    return resources.files("libsrv").joinpath("data", SHIPPED_NAME).read_bytes()


def copy_shipped_catalog(target: Path | str) -> Path:
    """Write the shipped catalog to `target` (its folder is created); returns the path."""
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(shipped_catalog_bytes())
    partial.replace(path)  # never a half-written catalog, even if two servers start at once
    return path


def ensure_default(db: Path | str) -> Path | None:
    """If `db` is the default catalog path and no file is there yet, create it from the
    shipped catalog and return it; otherwise change nothing and return None (a path the user
    chose that does not exist is an error for the storage to report, not a file to invent)."""
    if Path(db) != Path(DEFAULT_DB) or os.path.lexists(db):
        return None
    return copy_shipped_catalog(db)
