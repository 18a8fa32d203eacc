"""Write docs/cli.md, the reference of both command lines, from their argparse parsers.

    python scripts/cli_reference.py          # rewrite docs/cli.md
    python scripts/cli_reference.py --check  # exit 1 if docs/cli.md is not what the code says

The reference is built from the parsers' actions, not from ``--help`` text, so it reads the same
whatever the Python version's help formatting. tests/test_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"
HEADER = """# Command-line reference

Generated from the programs' own argument parsers by `python scripts/cli_reference.py`
(`python3 kit.py docs`); a test fails when this file and the code disagree. Every flag's help
says its default.
"""


def commands(parser: argparse.ArgumentParser,
             prefix: str) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(command line, one-line help, parser) for a program and each sub-command, in order."""
    yield prefix, parser.description or "", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                for line, text, deeper in commands(sub, f"{prefix} {name}"):
                    yield line, (helps.get(name, "") if deeper is sub else text), deeper


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _usage(action: argparse.Action) -> str:
    if not action.option_strings:
        metavar = action.metavar or action.dest
        return f"`{metavar}`" + (" ..." if action.nargs in ("*", "+") else "")
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{names}`"
    if action.choices is not None and action.metavar is None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = str(action.metavar or action.dest.upper())
    return f"`{names} {value}`"


def section(line: str, text: str, parser: argparse.ArgumentParser) -> str:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| {_usage(action)} | {_cell(action.help or '')} |")
    out = [f"## `{line}`", ""]
    if text:
        out += [_cell(text), ""]
    if rows:
        out += ["| argument | what it does |", "|---|---|", *rows, ""]
    return "\n".join(out)


def reference() -> str:
    from libsrv.cli import build_parser as libsrv_parser
    from libsrv_bench.cli import build_parser as bench_parser
    from libsrv_bench.echo import build_parser as echo_parser

    parts = [HEADER]
    for program, parser in (("python -m libsrv", libsrv_parser()),
                            ("python -m libsrv_bench", bench_parser())):
        for line, text, command in commands(parser, program):
            if line.endswith(" echo"):  # parsed by libsrv_bench.echo, which has its own parser
                command = echo_parser()
            parts.append(section(line, text, command))
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = reference()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python3 kit.py docs", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
