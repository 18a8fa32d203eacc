"""The project's own files agree with each other, and the core package needs only its core."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.fast

EXTRAS_ONLY = ("pandas", "matplotlib", "hdrhistogram", "tqdm", "ipywidgets", "jupyterlab",
               "voila", "IPython")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)", requirement)
    assert match, requirement
    return match.group(1).lower()


def test_the_core_needs_pyzmq_and_filelock_only_and_extras_hold_the_rest() -> None:
    project = _project()
    assert sorted(_name(r) for r in project["dependencies"]) == ["filelock", "pyzmq"]
    extras = project["optional-dependencies"]
    named = {_name(r) for reqs in extras.values() for r in reqs}
    for module in EXTRAS_ONLY:
        assert module.lower() in named or module == "IPython", module


def test_environment_yml_installs_the_package_with_its_extras_and_names_nothing_else() -> None:
    conda: list[str] = []
    pip: list[str] = []
    section = ""
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\S", line):
            section = line.split(":")[0]
        if section != "dependencies":
            continue
        if item := re.match(r"^  - (\S.*)$", line):
            conda.append(item.group(1))
        elif item := re.match(r"^      - (\S.*)$", line):
            pip.append(item.group(1))
    assert {re.split(r"[<>=:]", c)[0] for c in conda} == {"python", "pip"}
    assert len(pip) == 1
    match = re.fullmatch(r"-e \.\[([a-z,]+)\]", pip[0])
    assert match, pip[0]
    wanted = set(match.group(1).split(","))
    assert wanted <= set(_project()["optional-dependencies"])
    assert {"lab", "bench"} <= wanted


def test_importing_the_server_and_client_loads_no_extra() -> None:
    """A classroom server machine installs pyzmq and filelock only: nothing the server, the
    client or the CLI imports at start may need an extra."""
    code = ("import sys, libsrv, libsrv.cli, libsrv.client, libsrv.serving, libsrv.process; "
            f"print([m for m in {EXTRAS_ONLY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"
