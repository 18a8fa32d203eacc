"""The project's own files agree with each other."""

from __future__ import annotations

import re
import tomllib

from tests.helpers import ROOT


def _names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
        assert match, req
        out[match.group(1).lower()] = match.group(2).replace(" ", "")
    return out


def test_environment_yml_and_pyproject_list_the_same_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"])
    conda: list[str] = []
    section = ""
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\S", line):
            section = line.split(":")[0]
        item = re.match(r"^  - (\S.*)$", line)  # top-level items of the section
        if section == "dependencies" and item and not item.group(1).startswith(("python",
                                                                                   "pip")):
            conda.append(item.group(1))
    assert _names(conda) == wanted
    assert "pyzmq" in wanted and "filelock" in wanted
