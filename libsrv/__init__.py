"""libsrv: a ZeroMQ library-catalog service for distributed-systems classes."""

from libsrv.client import LibraryClient, Reply, ServerUnreachable
from libsrv.protocol import Action, Code

__version__ = "0.1.0"
__all__ = ["Action", "Code", "LibraryClient", "Reply", "ServerUnreachable", "__version__"]
