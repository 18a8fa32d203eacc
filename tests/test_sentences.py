"""What the bench says about a run, from facts, in both languages: the verifier's findings,
the reasons a run is not clean, and the grader's checks. No sockets, milliseconds."""

from __future__ import annotations

import string

import pytest

from libsrv_bench.grade import Check, GroupResult, _check
from libsrv_bench.judgement import not_clean_facts, reasons_in
from libsrv_bench.sentences import _TEMPLATES, KEYS, said, say
from libsrv_bench.verifier import LOAN, OK, QUERY, RETURN, Op, unreadable_file, verify

pytestmark = pytest.mark.fast

MS = 1_000_000
A = "9798000000007"


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_sentence_exists_in_both_languages_with_the_same_facts() -> None:
    assert set(_TEMPLATES["es"]) == set(_TEMPLATES["en"])
    for key, english in _TEMPLATES["en"].items():
        assert fields(_TEMPLATES["es"][key]) == fields(english), key
        assert _TEMPLATES["es"][key] != english or fields(english) <= {"text", "kind", "error"}


def test_a_finding_keeps_its_facts_and_says_them_in_spanish() -> None:
    history = [Op(1, LOAN, A, 0, 1 * MS, OK, "Ana", "Ana", None),
               Op(7, LOAN, A, 2 * MS, 3 * MS, OK, "Luis", "Luis", None)]
    verdict = verify(history, {A: False},
                     {A: {"ISBN": A, "titulo": "Rayuela", "estado": "prestado"}})
    finding = verdict.violations[0].as_dict()
    assert finding["kind"] == "double-loan"
    assert said(finding, "en") == finding["detail"]  # the stored words are the English ones
    spanish = said(finding, "es")
    assert spanish.startswith("al cliente 7 se le confirmó el préstamo de «Rayuela")
    assert "entre los 2.0 y los 3.0 ms" in spanish and "disponible" in spanish
    finding["facts"]["client"] = 9  # the words follow the facts, not fixed text
    assert "cliente 9" in said(finding, "es")


def test_every_kind_of_finding_the_verifier_makes_can_be_said_in_spanish() -> None:
    history = [Op(1, LOAN, A, 0, 1 * MS, OK, "Ana", "Otro", None),  # wrong borrower shown
               Op(2, RETURN, A, 2 * MS, 3 * MS, OK, None, None, None),
               Op(3, RETURN, A, 4 * MS, 5 * MS, OK, None, None, None),  # double return
               Op(4, QUERY, A, 6 * MS, 7 * MS, OK, None, None, 1)]  # stale: it is available
    verdict = verify(history, {A: False},
                     {A: {"ISBN": A, "titulo": "Rayuela", "estado": "prestado"}},
                     {A: {"ISBN": A, "estado": "no prestado"}})
    found = [v.as_dict() for v in verdict.violations] + [unreadable_file("boom").as_dict()]
    assert {"double-return", "wrong-borrower", "file-mismatch", "final-state",
            "file-unreadable"} <= {f["kind"] for f in found}
    for finding in found:
        assert finding["facts"] or finding["kind"] == "file-unreadable"
        assert said(finding, "es") != finding["detail"], finding["kind"]


def test_an_older_finding_without_facts_keeps_its_words() -> None:
    old = {"kind": "double-loan", "book": A, "detail": "client 1 was told ..."}
    assert said(old, "es") == "client 1 was told ..."


def test_the_reasons_a_run_is_not_clean_are_said_in_spanish() -> None:
    summary = {"requests": 100, "errors": 40, "timeouts": 0, "codes": {"INTERNAL": 40},
               "writes_acknowledged": 0}
    facts = not_clean_facts(summary, {"violations": 3}, 0.05, writes=True)
    assert [key for key, _ in facts] == ["anomalies", "errors", "no-writes"]
    summary["not_clean_facts"] = facts
    spanish = reasons_in(summary, "es")
    assert spanish[0].startswith("3 anomalías") and "40.0%" in spanish[1]
    assert reasons_in(summary, "en")[2].startswith("no loan or return was acknowledged")
    assert reasons_in({"not_clean": ["stored words"]}, "es") == ["stored words"]


def test_a_grading_check_is_said_in_both_languages_from_what_was_seen() -> None:
    check = _check("loan by ISBN", False, "expected", code="OK", got="TIMEOUT", book_right=True)
    assert check.detail == "expected OK, got TIMEOUT" == check.words("en")
    assert check.words("es") == "se esperaba OK, llegó TIMEOUT"
    result = GroupResult(group=None, checks=[check, Check("return", True, "fine")])  # type: ignore[arg-type]
    assert result.findings_in("es") == ["préstamo por ISBN: se esperaba OK, llegó TIMEOUT"]
    fight = _check("concurrency fight clean", False, "reasons",
                   reasons=[["anomalies", {"count": 2}], ["no-answer", {}]])
    assert fight.words("es").startswith("2 anomalías") and "ninguna petición" in fight.words("es")


def test_every_key_is_known() -> None:
    assert "reasons" in KEYS
    with pytest.raises(KeyError):
        say("no-such-key", {})


def test_the_grading_table_is_in_words_and_rounded() -> None:
    from libsrv_bench.grade import Group, results_table

    result = GroupResult(Group("grupo-1", "tcp://127.0.0.1:5601"),
                         [_check("loan by ISBN", True, "expected", code="OK", got="OK")],
                         p50_ms_1=0.75512, throughput_16=2849.162)
    table = results_table([result], "es")
    assert table.loc["grupo-1", "préstamo por ISBN"] == "✔"
    assert table.loc["grupo-1", "p50 con 1 cliente (ms)"] == "0.755"
    assert table.loc["grupo-1", "peticiones/s con 16 clientes"] == "2,849"


def test_a_group_that_does_not_start_is_graded_with_its_own_words_escaped(tmp_path) -> None:
    """What a student's server printed reaches the report as written: its HTML escaped."""
    import sys

    from libsrv_bench.grade import grade

    groups = tmp_path / "groups.toml"
    crash = ("import sys; print('Traceback: <img src=x onerror=alert(1)> | no zmq', "
             "file=sys.stderr); sys.exit(3)")
    groups.write_text(f'[[group]]\nname = "g"\nendpoint = "tcp://127.0.0.1:9"\n'
                      f'dialect = "class"\ncommand = [{sys.executable!r}, "-c", {crash!r}]\n')
    [result] = grade(groups, tmp_path / "out", log=lambda line: None)
    assert not result.passed
    assert "exited with code 3 at start: Traceback: <img" in result.findings_in("en")[0]
    report = (tmp_path / "out" / "README.md").read_text()
    assert "Traceback: &lt;img src=x onerror=alert(1)&gt; \\| no zmq" in report
    assert "<img" not in report
