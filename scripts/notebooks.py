"""Build the lab notebooks, in both languages and in both variants, from one source each.

    python scripts/notebooks.py                  # rewrite the students' notebooks
    python scripts/notebooks.py --check          # exit 1 if a notebook is not what its source says
    python scripts/notebooks.py --teacher DIR    # the teachers' variants (with solutions) in DIR,
                                                 # a folder beside notebooks/ (e.g. profesor)
    python scripts/notebooks.py collect FILE...  # the answer cells of handed-in notebooks

Each `notebooks/source/NN-name.nb` is a list of cells, each opened by a header line::

    %% md es                 a Markdown cell, only in the Spanish notebook
    %% md en                 ... only in the English one
    %% code parameters       the parameters cell (its `LANG = ...` line follows the variant,
                             and its "../" paths gain a level in notebooks/en/)
    %% md solution es        only in the teacher's variant (the expected answer)
    %% md answer es          the student's answer cell, which `collect` reads back

A cell with no language tag is in both. The students' notebooks are `notebooks/NN-name.ipynb`
(Spanish, the class's language) and `notebooks/en/NN-name.ipynb`; the teachers' variants are
never committed, so a student's copy holds no solution. Parsing and building do no I/O, so
tests/test_lessons.py checks them in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from libsrv.defaults import DEFAULT_PAGE_LANG as DEFAULT_LANG  # the class's language
from libsrv.messages import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "source"
KINDS = {"md": "markdown", "code": "code"}
ROLES = ("parameters", "solution", "answer")
HEADER = re.compile(r"^%% (?P<words>.+)$")
LANG_LINE = re.compile(r'^LANG = "[a-z]+"', re.MULTILINE)
UP_A_LEVEL = re.compile(r'"\.\./')  # a path from notebooks/, in a notebook one folder deeper
ANSWER_PROMPT = {"es": "*(escribe aquí)*", "en": "*(write here)*"}


class SourceError(ValueError):
    """A source file that does not follow the format above; the message says where."""


@dataclass(frozen=True)
class Cell:
    kind: str  # "markdown" or "code"
    text: str
    langs: frozenset[str]  # the languages whose notebooks hold it
    roles: frozenset[str]


def parse(text: str, name: str = "source") -> list[Cell]:
    """The cells of a source, in order. Raises SourceError on an unknown word or a stray line."""
    cells: list[Cell] = []
    header: tuple[int, list[str]] | None = None
    body: list[str] = []

    def close() -> None:
        if header is None:
            if any(line.strip() for line in body):
                raise SourceError(f"{name}:1: text before the first '%% ' header")
            return
        number, words = header
        if words[0] not in KINDS:
            raise SourceError(f"{name}:{number}: a cell is 'md' or 'code', not {words[0]!r}")
        unknown = [w for w in words[1:] if w not in LANGUAGES and w not in ROLES]
        if unknown:
            raise SourceError(f"{name}:{number}: unknown tag {unknown[0]!r} "
                              f"(languages {LANGUAGES}, roles {ROLES})")
        langs = frozenset(w for w in words[1:] if w in LANGUAGES) or frozenset(LANGUAGES)
        cells.append(Cell(KINDS[words[0]], "\n".join(body).strip("\n"), langs,
                          frozenset(w for w in words[1:] if w in ROLES)))

    for number, line in enumerate(text.splitlines(), start=1):
        match = HEADER.match(line)
        if match:
            close()
            header, body = (number, match["words"].split()), []
        else:
            body.append(line)
    close()
    return cells


def build(cells: Iterable[Cell], lang: str, *, teacher: bool = False) -> dict:
    """The notebook (nbformat 4 as a dict) of one language and variant; no outputs."""
    out = []
    for cell in cells:
        if lang not in cell.langs or ("solution" in cell.roles and not teacher):
            continue
        text = cell.text
        if "parameters" in cell.roles:
            text = LANG_LINE.sub(f'LANG = "{lang}"', text)
            if lang != DEFAULT_LANG:
                text = UP_A_LEVEL.sub('"../../', text)
        if "answer" in cell.roles and not text.strip():
            text = ANSWER_PROMPT[lang]
        tags = sorted(cell.roles)
        entry: dict = {"cell_type": cell.kind, "id": f"c{len(out):02d}",
                       "metadata": {"tags": tags} if tags else {},
                 "source": text.splitlines(keepends=True)}  # as Jupyter and ruff write it
        if cell.kind == "code":
            entry.update(execution_count=None, outputs=[])
        out.append(entry)
    return {"cells": out, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def dumps(notebook: dict) -> str:
    """The notebook as Jupyter writes it (indent 1, keys sorted), so rebuilding changes nothing."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def student_path(stem: str, lang: str, root: Path = NOTEBOOKS) -> Path:
    return root / f"{stem}.ipynb" if lang == DEFAULT_LANG else root / lang / f"{stem}.ipynb"


def outputs(sources: Path = SOURCES, root: Path = NOTEBOOKS, *,
            teacher: bool = False) -> dict[Path, str]:
    """Every notebook the sources make (path -> text): students' under `root`, or with
    `teacher` the variants with solutions, under `root` in the same layout."""
    made = {}
    for source in sorted(sources.glob("*.nb")):
        cells = parse(source.read_text(encoding="utf-8"), source.name)
        for lang in LANGUAGES:
            made[student_path(source.stem, lang, root)] = dumps(build(cells, lang,
                                                                      teacher=teacher))
    return made


def answers(notebook: dict) -> list[tuple[str, str]]:
    """(the heading above it, the text) of each answer cell of a (handed-in) notebook."""
    found, heading = [], ""
    for cell in notebook.get("cells", []):
        text = "".join(cell.get("source", ""))  # a list of lines, or one string
        if cell.get("cell_type") == "markdown" and text.lstrip().startswith("#"):
            heading = text.lstrip().splitlines()[0].lstrip("#").strip()
        if "answer" in cell.get("metadata", {}).get("tags", []):
            found.append((heading, text.strip()))
    return found


def collect(paths: Iterable[Path]) -> str:
    """The answers of many notebooks as one Markdown page, notebook by notebook."""
    parts = []
    for path in paths:
        parts.append(f"# {path}\n")
        for heading, text in answers(json.loads(path.read_text(encoding="utf-8"))):
            blank = text in ANSWER_PROMPT.values()
            parts.append(f"## {heading}\n\n{'(sin respuesta)' if blank else text}\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    if argv[:1] == ["collect"]:
        print(collect(Path(p) for p in argv[1:]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a committed notebook differs from its source")
    parser.add_argument("--teacher", type=Path, metavar="DIR",
                        help="write the variants with solutions under DIR instead")
    args = parser.parse_args(argv)
    made = outputs(root=args.teacher, teacher=True) if args.teacher else outputs()
    stale = [p for p, text in made.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is not what its source says: "
                  "run python scripts/notebooks.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(made[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
