"""Temporary folders that say which process owns them, so that the next start can sweep those
whose owner was killed before it could clean up (the broker's socket folder, the catalog
copies notebooks and the forms page serve)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

OWNER_FILE = "owner.pid"


def owned_temp_dir(prefix: str) -> Path:
    """A new temporary folder, marked as this process's."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / OWNER_FILE).write_text(str(os.getpid()))
    return folder


def sweep_orphans(prefix: str, folder: Path | str | None = None) -> list[Path]:
    """Delete the folders named `prefix*` (in the temporary folder, or `folder`) whose owner
    process is gone; returns those removed. Folders without an owner file are left alone
    (not ours to judge, or not finished being made)."""
    removed = []
    for candidate in Path(folder or tempfile.gettempdir()).glob(prefix + "*"):
        try:
            owner = int((candidate / OWNER_FILE).read_text())
            os.kill(owner, 0)
            continue  # its owner is alive
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # no owner file, or another user's process
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed
