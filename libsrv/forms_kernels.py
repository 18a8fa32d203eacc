"""The forms page's kernel manager: Jupyter's, with a cap on how many kernels run at once.

Every visit to the page starts a kernel of about 55 MB; a page opened to the network must not
let anyone start them without end. Past the cap a visit gets HTTP 503 ("the class is full,
try again in a minute"), and idle kernels are culled, connected or not (see
`libsrv.forms_page`).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer

# What a visitor past the cap reads (Voilà shows the reason on its error page).
FULL_REASON = "The class is full: try again in a minute / La clase está llena: prueba en un minuto"


class CappedKernelManager(AsyncMappingKernelManager):
    """At most `max_kernels` kernels at once."""

    max_kernels = Integer(20, config=True, help="kernels that may run at once")

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        if len(self.list_kernel_ids()) >= self.max_kernels:
            raise web.HTTPError(503, f"The page has {self.max_kernels} visitors already",
                                reason=FULL_REASON)
        return await super().start_kernel(*args, **kwargs)
