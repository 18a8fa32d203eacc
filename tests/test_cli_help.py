"""Every command-line flag says what it does and, when it takes a value, what it defaults to."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from libsrv.catalog import Catalog
from libsrv.cli import build_parser as libsrv_parser
from libsrv.cli import main as cli_main
from libsrv_bench.cli import build_parser as bench_parser

pytestmark = pytest.mark.fast


def commands(parser: argparse.ArgumentParser, prefix: str):
    """(name, parser) for the program and each of its sub-commands."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{prefix} {name}")


def flags():
    for program, parser in (("python -m libsrv", libsrv_parser()),
                            ("python -m libsrv_bench", bench_parser())):
        for name, command in commands(parser, program):
            for action in command._actions:
                if action.option_strings and not isinstance(
                        action, argparse._HelpAction | argparse._VersionAction):
                    yield pytest.param(action, id=f"{name} {action.option_strings[-1]}")


@pytest.mark.parametrize("action", list(flags()))
def test_every_flag_has_help_with_its_default(action: argparse.Action) -> None:
    assert action.help and len(action.help) > 10
    switch = action.nargs == 0
    if not switch and not action.required:
        assert "default" in action.help.lower(), action.help


@pytest.mark.parametrize("spelling", ["query-isbn", "query_isbn", "QUERY_ISBN"])
def test_call_takes_actions_with_dashes_or_underscores(spelling: str) -> None:
    args = libsrv_parser().parse_args(["call", spelling, "9788437604947"])
    assert args.action == "query_isbn"  # the Action itself


def test_an_unknown_action_lists_the_choices() -> None:
    result = subprocess.run([sys.executable, "-m", "libsrv", "call", "fly"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "loan-isbn" in result.stderr


@pytest.mark.parametrize(("typed", "action"), [
    ("query-isbn", "query_isbn"), ("QUERY_ISBN", "query_isbn"), ("return", "return_isbn"),
    ("loan", "loan_isbn"), ("Prestamo por ISBN", "loan_isbn"), ("préstamo por título",
                                                                   "loan_title"),
    ("devolucion-por-isbn", "return_isbn"), ("Consulta por Titulo", "query_title")])
def test_call_takes_our_names_short_aliases_and_the_class_spanish_ones(typed: str,
                                                                       action: str) -> None:
    args = libsrv_parser().parse_args(["call", typed])
    assert args.action == action


def test_an_unknown_action_is_named_with_what_would_work(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        libsrv_parser().parse_args(["call", "fly"])
    err = capsys.readouterr().err
    assert "unknown action 'fly'" in err and "return-isbn" in err


def test_generate_writes_a_catalog_the_server_can_read_and_the_same_seed_repeats_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert cli_main(["generate", "--books", "50", "--out", str(first), "--seed", "3"]) == 0
    assert "wrote 50 books" in capsys.readouterr().out
    assert cli_main(["generate", "--books", "50", "--out", str(second), "--seed", "3"]) == 0
    catalog = Catalog.from_bytes(first.read_bytes())
    assert len(catalog) == 50 and len({book["ISBN"] for book in catalog}) == 50
    assert first.read_bytes() == second.read_bytes()
