"""The compiled data path built with AddressSanitizer and UndefinedBehaviorSanitizer, under the
in-process tests and the fuzz of tests/test_data_path.py and the attacks on a real server: any
out-of-bounds access, use after free or undefined behaviour in libsrv/data_path.c's own code
fails here, even where it happened not to crash (a read of a freed message, planted on
purpose, does). What libzmq does with the path's buffers is not instrumented. The load
generator's compiled loops (libsrv_bench/client_loop.c) likewise, under tests/test_load_loop.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def _runtime(name: str) -> str | None:
    """The path of gcc's sanitizer runtime `name`, or None (no gcc, or not installed)."""
    try:
        found = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                               text=True, timeout=30, check=False).stdout.strip()
    except OSError:
        return None
    return found if os.path.isabs(found) and Path(found).exists() else None


def _sanitized(tmp_path: Path) -> dict[str, str]:
    """The environment that builds the compiled parts with the sanitizers (into a cache of
    the test's own) and preloads their runtimes; skips without them."""
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if asan is None or ubsan is None:
        pytest.skip("gcc's sanitizer runtimes are not installed")
    compiler = tmp_path / "cc"
    compiler.write_text('#!/bin/sh\nexec gcc -fsanitize=address,undefined '
                        '-fno-sanitize-recover=undefined -fno-omit-frame-pointer -g "$@"\n')
    compiler.chmod(0o755)
    return dict(os.environ, CC=str(compiler), XDG_CACHE_HOME=str(tmp_path / "cache"),
                LD_PRELOAD=f"{asan}:{ubsan}", LIBSRV_DATA_PATH="compiled",
                LIBSRV_LOAD_LOOP="compiled",
                # Python itself is not built for leak checking; memory errors are the point
                ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
                UBSAN_OPTIONS="print_stacktrace=1:exitcode=98")


def test_the_load_loops_are_clean_under_the_sanitizers(tmp_path: Path) -> None:
    env = _sanitized(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "tests/test_load_loop.py", "-k", "not python"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert "Sanitizer" not in output and "runtime error" not in output, output[-4000:]
    assert done.returncode == 0, output[-4000:]
    assert list((tmp_path / "cache" / "libsrv").glob("client_loop-*.so")), \
        "the sanitized library was not built (the tests ran something else)"


def test_the_data_path_is_clean_under_the_sanitizers(tmp_path: Path) -> None:
    env = _sanitized(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "tests/test_data_path.py", "tests/test_broker_attacks.py",
         # ASan keeps freed memory in quarantine, so the memory bound cannot be read under it
         "-k", "not python and not huge"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert "Sanitizer" not in output and "runtime error" not in output, output[-4000:]
    assert done.returncode == 0, output[-4000:]
    built = list((tmp_path / "cache" / "libsrv").glob("data_path-*.so"))
    assert built, "the sanitized library was not built (the tests ran something else)"
