"""`libsrv_bench.transports` without running anything: the rows it compares, and the sentences
and verdicts it computes from a table (a changed number changes the sentence)."""

from __future__ import annotations

import pandas as pd
import pytest

from libsrv_bench.compare import REFERENCE, _row
from libsrv_bench.settings import RunConfig
from libsrv_bench.transports import (
    own_echo,
    spoken_name,
    summary_lines,
    table_for_print,
    transport_rows,
    verdicts,
)

pytestmark = pytest.mark.fast


def test_every_transport_has_its_server_and_its_echo() -> None:
    rows = transport_rows(RunConfig(workers=2, clients=16))
    assert list(rows) == ["raw TCP echo, one process", "ZeroMQ echo, one REP process",
                          "ZeroMQ server, single REP",
                          "ZeroMQ server, broker + 2 workers",
                          "Flask gateway -> ZeroMQ server, broker + 2 workers",
                          "gRPC echo, 2 processes",
                          "gRPC server, 2 processes", "HTTP echo, 2 processes",
                          "HTTP server, 2 processes"]
    assert rows["gRPC echo, 2 processes"].echo == "proxy"
    assert rows["HTTP server, 2 processes"].transport == "http"
    assert {config.clients for config in rows.values()} == {16}
    for name in rows:
        if " server, " in name:
            mate = own_echo(name, 2)
            assert mate == REFERENCE or mate in rows, (name, mate)


def table(grpc_throughput: float, violations: int = 0) -> pd.DataFrame:
    rows = []
    for clients in (1, 16):
        for name, throughput, cpu in ((REFERENCE, 10_000.0, 60.0),
                                      ("gRPC echo, 2 processes", 2_000.0, 300.0),
                                      ("gRPC server, 2 processes", grpc_throughput, 600.0),
                                      ("HTTP server, 2 processes", 1_500.0, 350.0)):
            rows.append({"clients": clients, "name": name, "throughput": throughput,
                         "throughput_ratio": throughput / 10_000, "p99_ms": 2.5 * clients,
                         "server_cpu_us": cpu, "load_cpu_us": 50.0,
                         "violations": violations if "server" in name else 0,
                         "load_saturated": name == "gRPC echo, 2 processes" and clients == 16})
    return pd.DataFrame(rows)


def test_the_sentences_are_computed_from_the_table() -> None:
    said = summary_lines(table(1_000.0), 2)
    assert said[0] == ("gRPC server, 2 processes: 1,000 requests/s at 16 clients (0.10× the "
                       "limit, 0.50× its own echo), 600 µs of server CPU per request; p99 "
                       "2.50 ms at 1 client(s).")
    assert "1,600 requests/s" in summary_lines(table(1_600.0), 2)[0]
    assert any(line.startswith("warning: a load process was saturated for gRPC echo")
               for line in said)


def test_a_server_with_anomalies_is_not_clean() -> None:
    assert verdicts(table(1_000.0)) == {"gRPC server, 2 processes": "clean",
                                        "HTTP server, 2 processes": "clean"}
    assert verdicts(table(1_000.0, violations=3))["gRPC server, 2 processes"] == "6 anomalies"


def test_the_sentences_and_names_speak_spanish_too() -> None:
    said = summary_lines(table(1_000.0), 2, "es")
    assert said[0].startswith("Servidor gRPC, 2 procesos: 1,000 peticiones/s con 16 clientes "
                              "(0.10× el límite, 0.50× su propio eco)")
    assert verdicts(table(1_000.0, violations=1), "es")["HTTP server, 2 processes"] == \
        "2 anomalías"
    assert spoken_name("Flask gateway -> ZeroMQ server, broker + 2 workers", "es") == \
        "pasarela Flask -> servidor ZeroMQ, broker + 2 trabajadores"
    assert spoken_name("gRPC echo, 1 process", "es") == "eco gRPC, un proceso"


def test_a_server_that_answers_badly_is_not_clean_without_any_anomaly() -> None:
    bad = table(1_000.0)
    bad["not_clean"] = ""
    bad.loc[bad["name"] == "gRPC server, 2 processes", "not_clean"] = \
        "errors and timeouts are 100% of the requests"
    said = verdicts(bad)
    assert said["gRPC server, 2 processes"] == \
        "NOT CLEAN: errors and timeouts are 100% of the requests"
    assert said["HTTP server, 2 processes"] == "clean"
    # compare keeps the class's words beside the English ones, from the summary's facts
    row = _row(1, "gRPC server, 2 processes", {
        "throughput": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "violations": 0,
        "not_clean": ["no request was answered in the measured time"],
        "not_clean_facts": [["no-answer", {}]]})
    assert row["not_clean_es"] == "ninguna petición recibió respuesta en el tiempo medido"
    bad["not_clean_es"] = ""
    bad.loc[bad["name"] == "gRPC server, 2 processes", "not_clean_es"] = row["not_clean_es"]
    assert verdicts(bad, "es")["gRPC server, 2 processes"] == \
        "NO LIMPIO: ninguna petición recibió respuesta en el tiempo medido"


def test_a_p99_measured_on_too_few_requests_carries_the_dagger() -> None:
    rows = table(1_000.0)
    assert "†" not in " ".join(summary_lines(rows, 2))
    assert not table_for_print(rows)["p99_ms"].str.contains("†").any()
    rows["p99_enough"] = rows["name"] != "gRPC server, 2 processes"
    assert summary_lines(rows, 2)[0].endswith("p99 2.50 ms at 1 client(s) †.")
    marked = table_for_print(rows).set_index("name")["p99_ms"]
    assert marked.loc["gRPC server, 2 processes"].tolist() == ["2.50 †", "40.00 †"]
    assert not marked.loc["HTTP server, 2 processes"].str.contains("†").any()
