"""libsrv: a ZeroMQ library-catalog service for distributed-systems classes.

The names below are imported on first use, so that a process that needs one module (a worker,
the feed) does not pay for all of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Action", "Code", "LibraryClient", "LiveCatalog", "Reply", "ServerConfig",
           "ServerUnreachable", "__version__", "serve"]

_HOMES = {"Action": "libsrv.protocol", "Code": "libsrv.protocol",
          "LibraryClient": "libsrv.client", "Reply": "libsrv.client",
          "ServerUnreachable": "libsrv.client", "ServerConfig": "libsrv.config",
          "LiveCatalog": "libsrv.live", "serve": "libsrv.serving"}

if TYPE_CHECKING:
    from libsrv.client import LibraryClient, Reply, ServerUnreachable
    from libsrv.config import ServerConfig
    from libsrv.live import LiveCatalog
    from libsrv.protocol import Action, Code
    from libsrv.serving import serve


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'libsrv' has no attribute {name!r}")
    return getattr(import_module(home), name)
