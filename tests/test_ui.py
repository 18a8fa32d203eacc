"""The notebook widgets, driven directly (fill the fields, click the buttons) against a real
server, and the local server a notebook starts."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from libsrv.cards import book_card, catalog_table
from libsrv.process import ServerProcess
from libsrv.ui import LibraryForms, LocalServer
from tests.helpers import client_for, free_port, wait_until

pytestmark = pytest.mark.fast

QUIJOTE = "9788437604947"
HOSTILE = "<img src=x onerror=alert(1)>"


def click(form, **values: str) -> str:
    for name, value in values.items():
        form.fields[name].value = value
    form.button.click()
    return form.result.value


def submitted(form, **values: str) -> str:
    """Fill, click, and wait (with a deadline) for the reply to be drawn."""
    for name, value in values.items():
        form.fields[name].value = value
    future = form.submit()
    future.result(timeout=20)
    return form.result.value


@pytest.fixture
def server(start_server, catalog_file: Path) -> ServerProcess:
    return start_server(catalog_file, workers=2)


@pytest.fixture
def make_forms() -> Iterator[Callable[..., LibraryForms]]:
    """Build LibraryForms (in English unless told otherwise); every one is closed (its live
    feed stopped) after the test."""
    built: list[LibraryForms] = []

    def make(endpoint: str, **kwargs: object) -> LibraryForms:
        kwargs.setdefault("lang", "en")
        forms = LibraryForms(endpoint, **kwargs)  # type: ignore[arg-type]
        built.append(forms)
        return forms

    yield make
    for forms in built:
        forms.close()


def test_forms_show_replies_like_the_class_page(server: ServerProcess, make_forms) -> None:
    forms = make_forms(server.endpoint)
    card = submitted(forms.query_isbn, isbn=QUIJOTE)
    assert "Don Quijote de la Mancha" in card and "no prestado" in card and "✓" in card
    card = submitted(forms.loan_title, title="la sombra del viento", borrower="Samuel")
    assert "Samuel" in card and ">prestado<" in card
    refused = submitted(forms.loan_isbn, isbn="9788497592208", borrower="Guillermo")
    assert "✗" in refused and "UNAVAILABLE" in refused and "due back on" in refused
    assert "Samuel" in refused  # the current record is shown
    assert "NOT_FOUND" in submitted(forms.query_isbn, isbn="9780000000002")
    assert "BAD_REQUEST" in submitted(forms.query_isbn, isbn="12345")
    assert "BAD_REQUEST" in submitted(forms.loan_isbn, isbn=QUIJOTE, borrower="   ")
    assert "Return done" in submitted(forms.return_isbn, isbn="9788497592208")
    assert "sombra" in submitted(forms.query_title, title="SOMBRA").lower()


def test_a_button_click_returns_at_once_and_draws_the_reply_later(server: ServerProcess,
                                                                  make_forms) -> None:
    forms = make_forms(server.endpoint)
    # The server is frozen for the click, so the reply cannot come before click() returns:
    # click() returning at all shows the kernel is not blocked by the request.
    os.killpg(server.pid, signal.SIGSTOP)
    try:
        first = click(forms.query_isbn, isbn=QUIJOTE)
        assert "waiting" in first and forms.query_isbn.button.disabled
    finally:
        os.killpg(server.pid, signal.SIGCONT)
    wait_until(lambda: "Don Quijote" in forms.query_isbn.result.value, message="the card")
    assert not forms.query_isbn.button.disabled


def test_values_from_the_server_are_escaped(server: ServerProcess, make_forms) -> None:
    forms = make_forms(server.endpoint)
    card = submitted(forms.loan_isbn, isbn=QUIJOTE, borrower=HOSTILE)
    assert "<img" not in card and "&lt;img src=x onerror=alert(1)&gt;" in card
    forms.refresh().result(timeout=20)
    assert "<img" not in forms.catalog.value and "&lt;img" in forms.catalog.value


def test_catalog_table_refreshes_and_filters(server: ServerProcess, make_forms) -> None:
    forms = make_forms(server.endpoint)
    forms.refresh().result(timeout=20)
    assert "38 of 38 books" in forms.catalog.value
    forms.catalog_filter.value = "quijote"
    assert "1 of 38 books" in forms.catalog.value
    with client_for(server) as lib:
        lib.loan_isbn(QUIJOTE, "Ana")
    forms.refresh().result(timeout=20)
    assert "1 of 38 books" in forms.catalog.value and "Ana" in forms.catalog.value


def test_the_catalog_tab_follows_changes_made_elsewhere_without_a_click(
        server: ServerProcess, make_forms) -> None:
    forms = make_forms(server.endpoint)
    wait_until(lambda: "live" in forms.live_status.value and "38 of 38" in
               forms.catalog.value, message="the live catalog tab")
    forms.catalog_filter.value = "quijote"
    with client_for(server) as lib:  # another client, not the forms
        assert lib.loan_isbn(QUIJOTE, "Ana").success
    wait_until(lambda: "Ana" in forms.catalog.value, message="the loan to show up")
    with client_for(server) as lib:
        assert lib.return_isbn(QUIJOTE).success
    wait_until(lambda: "Ana" not in forms.catalog.value, message="the return to show up")


def test_forms_on_a_server_without_a_feed_say_they_are_not_live(
        start_server, catalog_file: Path, make_forms) -> None:
    server = start_server(catalog_file, workers=1, options={"publish": False})
    forms = make_forms(server.endpoint)
    wait_until(lambda: "not live" in forms.live_status.value, message="the status")
    assert "publishes no changes" in forms.live_status.value


def test_an_absent_server_gives_a_clear_message_within_the_timeout(make_forms) -> None:
    forms = make_forms(f"tcp://127.0.0.1:{free_port()}", timeout=0.3, retries=1)
    card = submitted(forms.loan_isbn, isbn=QUIJOTE, borrower="Ana")
    assert "No answer from the server" in card and "2 attempt" in card
    assert not forms.loan_isbn.button.disabled


def test_the_forms_speak_the_class_language_by_default(start_server, catalog_file: Path,
                                                       make_forms) -> None:
    """The class's page said Consultar, Solicitar Préstamo, Prestatario, Devolver Libro; with
    a server started with --lang es, the replies are Spanish too."""
    server = start_server(catalog_file, workers=1, options={"lang": "es"})
    forms = LibraryForms(server.endpoint, live=False)  # no language given
    titles = [forms.tabs.get_title(i) for i in range(6)]
    assert titles == ["Consulta ISBN", "Consulta título", "Préstamo ISBN", "Préstamo título",
                      "Devolución", "Catálogo"]
    assert forms.loan_isbn.button.description == "Solicitar préstamo"
    assert forms.loan_isbn.fields["borrower"].placeholder == "Prestatario"
    card = submitted(forms.loan_isbn, isbn=QUIJOTE, borrower="Ana")
    assert "Préstamo exitoso" in card and "Prestatario" in card and "Título" in card
    forms.refresh().result(timeout=20)
    assert "38 de 38 libros" in forms.catalog.value and "Fecha de devolución" in \
        forms.catalog.value


def test_cards_escape_hostile_titles_and_colour_the_state() -> None:
    book = {"ISBN": "1", "titulo": "<script>x</script>", "autores": ["<b>a</b>"],
            "estado": "prestado", "prestatario": HOSTILE, "fecha_prestamo": None,
            "fecha_devolucion": None}
    card = book_card(book, "<i>m</i>", success=False)
    for raw in ("<script>", "<b>", "<img", "<i>m"):
        assert raw not in card
    assert "#c0392b" in card  # lent
    table = catalog_table([book], "script")
    assert "1 of 1 books" in table and "<script>" not in table


def test_a_local_server_starts_serves_and_stops() -> None:
    local = LocalServer(workers=1)
    try:
        with client_for(local._process) as lib:
            assert lib.ping().success
        assert "running" in repr(local)
    finally:
        local.stop()
    assert not local.running


def test_a_server_started_for_a_notebook_dies_with_its_parent(catalog_file: Path) -> None:
    server = ServerProcess(catalog_file, workers=1, args=["--exit-with-parent"]).start()
    try:
        server._proc.stdin.close()  # what the OS does when the kernel dies
        wait_until(lambda: not server.alive(), message="the server to exit")
        server.wait_for_output("libsrv stopped")
    finally:
        server.kill()


def test_an_exported_notebook_keeps_the_forms_results_without_widget_state(
        server: ServerProcess, make_forms) -> None:
    """JupyterLab saves no widget state unless asked, and nbconvert then drops a widget's
    output: the forms' output also carries their last results as plain HTML, which an export
    shows instead (escaped, like the widgets)."""
    import nbformat
    from nbconvert import HTMLExporter

    forms = make_forms(server.endpoint)
    submitted(forms.loan_isbn, isbn=QUIJOTE, borrower=HOSTILE)
    submitted(forms.query_isbn, isbn="9780000000002")
    bundle = forms._bundle()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    cell = nbformat.v4.new_code_cell("forms", outputs=[
        nbformat.v4.new_output("display_data", data=bundle)])
    page, _ = HTMLExporter().from_notebook_node(nbformat.v4.new_notebook(cells=[cell]))
    assert "Don Quijote de la Mancha" in page and "NOT_FOUND" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and HOSTILE not in page
    assert "Loan by ISBN" in page and "Return" not in forms.static_html()  # answered only
