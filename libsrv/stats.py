"""Request counters shared by the server's processes, for the `stats` action.

Counters live in shared memory: each worker adds to its own row only, so no locking is needed,
and the worker that answers `stats` sums every row. A replaced worker inherits its row.
"""

from __future__ import annotations

import time
from multiprocessing.sharedctypes import RawArray, RawValue
from typing import Any

from libsrv.protocol import Action, Code

ACTIONS: tuple[str, ...] = (*(a.value for a in Action), "invalid")
CODES: tuple[str, ...] = tuple(c.value for c in Code)
_ACTION_INDEX = {name: i for i, name in enumerate(ACTIONS)}
_CODE_INDEX = {name: i for i, name in enumerate(CODES)}


class StatsBoard:
    """Counts per worker, action and reply code; worker pids and restarts; start time.

    Create it in the parent before starting workers and pass it to them (it pickles as shared
    memory under the spawn start method).
    """

    def __init__(self, workers: int, storage: str) -> None:
        self.rows = max(1, workers)
        self.workers = workers
        self.storage = storage
        self._width = len(ACTIONS) * len(CODES)
        # one row per worker, and one for the process facing the clients (the broker, or the
        # single server), which answers some requests itself: each row has one writer
        self.counts = RawArray("q", (self.rows + 1) * self._width)
        self.pids = RawArray("q", self.rows)
        self.restarts = RawArray("q", self.rows)
        self.started = RawValue("d", time.time())
        # processes answering requests now (the broker writes it; the single server is one):
        # alive is not ready, and a worker still loading its catalog serves nobody
        self.serving = RawValue("i", 0)
        # set by a process whose flush at shutdown failed: the catalog file may lag the journal
        self.flush_failed = RawValue("b", 0)
        # the broker's data path: 1 compiled (libsrv/data_path.c), 0 Python or no broker
        self.compiled = RawValue("b", 0)

    def count(self, row: int, action: str, code: str) -> None:
        index = row * self._width + _ACTION_INDEX[action] * len(CODES) + _CODE_INDEX[code]
        self.counts[index] += 1

    def count_front(self, action: str, code: str) -> None:
        """Count a reply written by the process facing the clients."""
        self.count(self.rows, action, code)

    def snapshot(self) -> dict[str, Any]:
        per_action: dict[str, dict[str, int]] = {}
        by_code = dict.fromkeys(CODES, 0)
        total = 0
        for a, action in enumerate(ACTIONS):
            for c, code in enumerate(CODES):
                n = sum(self.counts[row * self._width + a * len(CODES) + c]
                        for row in range(self.rows + 1))
                if n:
                    per_action.setdefault(action, {})[code] = n
                    by_code[code] += n
                    total += n
        return {
            "uptime_s": round(time.time() - self.started.value, 3),
            "workers": self.workers,
            "serving": self.serving.value,
            "worker_pids": list(self.pids),
            "worker_restarts": sum(self.restarts),
            "storage": self.storage,
            "data_path": ("compiled" if self.compiled.value else "python") if self.workers
            else "none",
            "requests": total,
            "by_code": by_code,
            "by_action": per_action,
        }
