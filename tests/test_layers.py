"""The import graph points down: every libsrv module imports only modules below it.

The order below is the architecture: domain helpers and messages at the bottom, then the
catalog and the wire protocol, the loan rules and storage, configuration, the client, the
server, and the programs and widgets on top. An import that points up (the client importing
widgets, storage importing the rules, the domain importing the wire protocol) fails here; a new
module must be given its place. Imports only for type checking are not arrows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.fast

ORDER = [
    "libsrv.defaults",  # every default a user sees: imports nothing
    "libsrv.domain", "libsrv.messages", "libsrv.scratch", "libsrv.security",
    "libsrv.storage.files", "libsrv.forms_kernels",
    "libsrv.catalog", "libsrv.protocol", "libsrv.decision", "libsrv.generate", "libsrv.stats",
    "libsrv.envelope",  # where the request is in a message a ROUTER reads: no I/O
    "libsrv.peers",  # what one client connection may hold: no I/O
    "libsrv.wire",
    "libsrv.storage.linelog", "libsrv.storage.base",
    "libsrv.library",  # the loan rules: storage must not need them
    "libsrv.storage.journal", "libsrv.storage.jsonfile", "libsrv.storage.memory",
    "libsrv.storage",
    "libsrv.config", "libsrv.shipped", "libsrv.cards", "libsrv.client",
    "libsrv.service", "libsrv.broker_core",
    "libsrv.data_path_build",  # builds the compiled data path (data_path.c) with its constants
    "libsrv.feed", "libsrv.live", "libsrv.watch",
    "libsrv.server", "libsrv.broker",
    "libsrv.broker_compiled",  # the broker on the compiled data path; picks one of the two
    # the other transports (imported by serving only when asked for), generated stubs first
    "libsrv.transports", "libsrv.transports.library_pb2", "libsrv.transports.library_pb2_grpc",
    "libsrv.transports.grpc_messages", "libsrv.transports.http_messages",
    "libsrv.transports.pool",
    "libsrv.transports.http_server", "libsrv.transports.grpc_server",
    "libsrv.transports.callers", "libsrv.transports.gateway",
    "libsrv.serving", "libsrv",
    "libsrv.program", "libsrv.process", "libsrv.demo",
    "libsrv.ui",  # widgets: nothing below may import them
    "libsrv.forms_page", "libsrv.cli", "libsrv.__main__",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The libsrv modules `path` imports anywhere (also inside functions), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name for name in names if name in ORDER)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in ORDER)
    return found


MODULES = sorted((ROOT / "libsrv").rglob("*.py"))


def test_every_module_has_its_place() -> None:
    assert sorted(module_name(p) for p in MODULES) == sorted(ORDER)


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down(path: Path) -> None:
    rank = ORDER.index(module_name(path))
    upward = sorted(name for name in imports(path) if ORDER.index(name) >= rank)
    assert not upward, f"{module_name(path)} imports {upward}, which sit above it"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """Not vacuous: the client importing the widgets is found (inside a function, too)."""
    fake = tmp_path / "client.py"
    fake.write_text("def show():\n    from libsrv.ui import LocalServer\n")
    assert imports(fake) == {"libsrv.ui"}


def test_the_engines_are_the_ones_the_defaults_name() -> None:
    from libsrv.defaults import DEFAULT_ENGINE, ENGINE_NAMES
    from libsrv.storage import ENGINES

    assert tuple(ENGINES) == ENGINE_NAMES and DEFAULT_ENGINE in ENGINES


def test_a_client_loads_no_storage_engine() -> None:
    """`from libsrv import LibraryClient` in a notebook loads neither filelock nor the engines
    (the defaults live in a leaf module)."""
    import subprocess
    import sys

    probe = ("import sys; from libsrv import LibraryClient; LibraryClient; print(sorted("
             "m for m in sys.modules if m.startswith(('filelock', 'libsrv.storage'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
