"""Every test file declares its tier, so that a new one cannot land in either unnoticed: its
module-level `pytestmark` holds exactly one of ``pytest.mark.fast`` (what ``kit.py test`` runs)
and ``pytest.mark.slow`` (only with ``--all``, as CI runs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

TESTS = Path(__file__).resolve().parent
TIERS = {"fast", "slow"}


def declared_tiers(path: Path) -> set[str]:
    """The tier marks named in the module-level `pytestmark` of the test file at `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for inner in ast.walk(node.value):
                if isinstance(inner, ast.Attribute) and inner.attr in TIERS and \
                        ast.unparse(inner.value) == "pytest.mark":
                    found.add(inner.attr)
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_every_test_file_declares_one_tier(path: Path) -> None:
    tiers = declared_tiers(path)
    assert len(tiers) == 1, (f"{path.name} declares {sorted(tiers) or 'no tier'}: add "
                             "`pytestmark = pytest.mark.fast` or `pytest.mark.slow`")


def test_the_check_sees_a_missing_and_a_double_tier(tmp_path: Path) -> None:
    none = tmp_path / "test_none.py"
    none.write_text("import pytest\n")
    both = tmp_path / "test_both.py"
    both.write_text("import pytest\npytestmark = [pytest.mark.fast, pytest.mark.slow]\n")
    assert declared_tiers(none) == set() and declared_tiers(both) == TIERS
