"""libsrv: a ZeroMQ library-catalog service for distributed-systems classes."""

from __future__ import annotations

from typing import Any

from libsrv.client import LibraryClient, Reply, ServerUnreachable
from libsrv.config import ServerConfig
from libsrv.protocol import Action, Code

__version__ = "0.1.0"
__all__ = ["Action", "Code", "LibraryClient", "LiveCatalog", "Reply", "ServerConfig",
           "ServerUnreachable", "__version__", "serve"]


def __getattr__(name: str) -> Any:
    # `libsrv.serve` loads the server's modules only when a program serves
    if name == "serve":
        from libsrv.serving import serve

        return serve
    if name == "LiveCatalog":
        from libsrv.live import LiveCatalog

        return LiveCatalog
    raise AttributeError(f"module 'libsrv' has no attribute {name!r}")
