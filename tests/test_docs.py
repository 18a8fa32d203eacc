"""What the docs say about the command lines is what the programs do."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from libsrv import cli as libsrv_cli
from libsrv_bench import cli as bench_cli
from tests.helpers import ROOT

pytestmark = pytest.mark.fast

README = (ROOT / "README.md").read_text(encoding="utf-8")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


PROGRAMS = [("libsrv", libsrv_cli), ("libsrv_bench", bench_cli)]


@pytest.mark.parametrize(("program", "module"), PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_the_cli_docstring_lists_every_subcommand(program: str, module) -> None:
    first_line = module.__doc__.splitlines()[0]
    listed = re.findall(r"[a-z][a-z-]*", first_line.split(f"-m {program}", 1)[1])
    assert sorted(listed) == sorted(subcommands(module.build_parser()))


@pytest.mark.parametrize(("program", "module"), PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_the_readme_shows_every_subcommand(program: str, module) -> None:
    for name in subcommands(module.build_parser()):
        assert re.search(rf"(-m {program}|kit\.py) {name}\b", README), f"{program} {name}"


def test_docs_cli_md_and_the_readme_table_are_what_the_parsers_say() -> None:
    """docs/cli.md and the README's serve table are generated from the parsers; adding a flag
    without regenerating fails."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_reference.py"),
                             "--check"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_reference_changes_when_a_flag_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: a parser with one more flag gives a different reference."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import cli_reference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    before = cli_reference.reference()
    original = libsrv_cli.build_parser

    def with_extra_flag() -> argparse.ArgumentParser:
        parser = original()
        subcommands(parser)["serve"].add_argument("--brand-new", help="a new flag (default no)")
        return parser

    monkeypatch.setattr(libsrv_cli, "build_parser", with_extra_flag)
    after = cli_reference.reference()
    assert "--brand-new" in after and "--brand-new" not in before
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--brand-new" in cli_reference.readme(readme) and "--brand-new" not in readme
