"""Write docs/cli.md, the reference of both command lines, and the README's table of `serve`'s
flags, from their argparse parsers.

    python scripts/cli_reference.py          # rewrite docs/cli.md and the README's table
    python scripts/cli_reference.py --check  # exit 1 if either is not what the code says

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
README = ROOT / "README.md"
README_START = "<!-- serve flags: generated from the parser by scripts/cli_reference.py -->\n"
README_END = "\n<!-- end of serve flags -->"
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


def table(parser: argparse.ArgumentParser) -> list[str]:
    """A parser's arguments as Markdown table lines (none when it takes no argument)."""
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| {_usage(action)} | {_cell(action.help or '')} |")
    return ["| argument | what it does |", "|---|---|", *rows] if rows else []


def section(line: str, text: str, parser: argparse.ArgumentParser) -> str:
    out = [f"## `{line}`", ""]
    if text:
        out += [_cell(text), ""]
    rows = table(parser)
    if rows:
        out += [*rows, ""]
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


def readme(current: str) -> str:
    """The README with its table of `serve`'s flags rebuilt from the parser."""
    from libsrv.cli import build_parser as libsrv_parser

    serve = next(command for line, _, command in commands(libsrv_parser(), "python -m libsrv")
                 if line.endswith(" serve"))
    head, found, rest = current.partition(README_START)
    if not found or README_END not in rest:
        raise SystemExit(f"{README}: the serve table's markers are missing")
    return head + README_START + "\n".join(table(serve)) + rest[rest.index(README_END):]


def main(argv: list[str]) -> int:
    wanted = {TARGET: reference(), README: readme(README.read_text(encoding="utf-8"))}
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is out of date: run python3 kit.py docs", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
