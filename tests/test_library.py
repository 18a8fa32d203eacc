"""The catalog and the library rules on their own: no sockets, no files."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from libsrv.catalog import AVAILABLE, LENT, Catalog, CatalogError
from libsrv.generate import make_books
from libsrv.library import Policy, answer_read, plan_write
from libsrv.protocol import Code, Request, parse_request
from tests.helpers import CLASS_DB, SHIPPED_CATALOG

pytestmark = pytest.mark.fast

TODAY = date(2026, 2, 23)
DEFAULT_POLICY = Policy()


def req(**fields: object) -> Request:
    return parse_request([json.dumps(fields).encode()])


def shipped() -> Catalog:
    return Catalog.from_bytes(SHIPPED_CATALOG.read_bytes())


def write(catalog: Catalog, policy: Policy = DEFAULT_POLICY, **fields: object) -> dict:
    outcome = plan_write(req(**fields), catalog, policy, TODAY)
    if outcome.change is not None:
        catalog.replace(outcome.change)
    return outcome.reply


def test_shipped_catalog_has_the_class_books_all_available_with_valid_isbns() -> None:
    catalog = shipped()
    assert len(catalog) >= 33 and not catalog.warnings
    for isbn, title, author in [
        ("9788437604947", "Don Quijote de la Mancha", "Miguel de Cervantes"),
        ("9788497592208", "La sombra del viento", "Carlos Ruiz Zafón"),
        ("9780140449266", "Crimen y castigo", "Fiódor Dostoyevski"),
    ]:
        book = catalog.get(isbn)
        assert book is not None and book["titulo"] == title and book["autores"] == [author]
    assert all(book["estado"] == AVAILABLE for book in catalog)


def test_class_db_loads_with_warnings_and_writes_back_in_the_same_shape() -> None:
    original = json.loads(CLASS_DB.read_text(encoding="utf-8"))
    catalog = Catalog.from_document(original)
    assert len(catalog.warnings) == 3 and "check digit" in catalog.warnings[0]
    assert json.loads(catalog.to_bytes()) == original


def test_a_bare_list_is_accepted_and_kept_a_list() -> None:
    books = make_books(3)
    catalog = Catalog.from_document(books)
    assert json.loads(catalog.to_bytes()) == books


@pytest.mark.parametrize(("document", "words"), [
    ({"books": []}, "libros"),
    ([{"ISBN": "1"}], "missing field"),
    ([dict(make_books(1)[0], estado="perdido")], "estado"),
    (make_books(1) + make_books(1), "appears twice"),
    ([dict(make_books(1)[0], autores="Ana")], "autores"),
    ([dict(make_books(1)[0], estado="prestado", prestatario=7)], "prestatario"),
    ([dict(make_books(1)[0], estado="prestado", prestatario="\ud800")], "invalid Unicode"),
    ([dict(make_books(1)[0], autores=["\udc00"])], "invalid Unicode"),
    ("text", "catalog"),
])
def test_unusable_catalogs_fail_with_a_clear_message(document: object, words: str) -> None:
    with pytest.raises(CatalogError, match=words):
        Catalog.from_document(document)


def test_loan_sets_borrower_dates_and_due_date() -> None:
    catalog = shipped()
    reply = write(catalog, Policy(loan_days=7), action="loan_isbn", isbn="9788437604947",
                  borrower="Guillermo")
    assert reply["code"] == Code.OK and reply["success"]
    book = catalog.get("9788437604947")
    assert book == reply["book"]
    assert (book["estado"], book["prestatario"], book["fecha_prestamo"],
            book["fecha_devolucion"]) == (LENT, "Guillermo", "2026-02-23", "2026-03-02")


def test_loans_by_isbn_last_7_days_and_by_title_14_as_in_the_class_code_and_both_are_set() \
        -> None:
    catalog = shipped()
    by_isbn = write(catalog, Policy(), action="loan_isbn", isbn="9788437604947", borrower="A")
    by_title = write(catalog, Policy(), action="loan_title", title="Crimen y castigo",
                     borrower="B")
    lent_on = date.fromisoformat(by_isbn["book"]["fecha_prestamo"])
    assert date.fromisoformat(by_isbn["book"]["fecha_devolucion"]) - lent_on == timedelta(7)
    assert date.fromisoformat(by_title["book"]["fecha_devolucion"]) - lent_on == timedelta(14)
    catalog = shipped()
    policy = Policy(loan_days=3, title_loan_days=21)
    by_isbn = write(catalog, policy, action="loan_isbn", isbn="9788437604947", borrower="A")
    by_title = write(catalog, policy, action="loan_title", title="Crimen y castigo",
                     borrower="B")
    assert date.fromisoformat(by_isbn["book"]["fecha_devolucion"]) - lent_on == timedelta(3)
    assert date.fromisoformat(by_title["book"]["fecha_devolucion"]) - lent_on == timedelta(21)


def test_a_lent_book_is_refused_with_its_record_and_due_date() -> None:
    catalog = shipped()
    write(catalog, action="loan_title", title="La sombra del viento", borrower="Samuel")
    reply = write(catalog, action="loan_title", title="la  SOMBRA del viento",
                  borrower="Guillermo")
    assert reply["code"] == Code.UNAVAILABLE and not reply["success"]
    assert reply["book"]["prestatario"] == "Samuel"
    assert reply["book"]["fecha_devolucion"] in reply["message"]
    assert catalog.get("9788497592208")["prestatario"] == "Samuel"


def test_loan_by_title_lends_the_first_available_copy() -> None:
    books = make_books(3)
    for book in books:
        book["titulo"] = "Rayuela"
    catalog = Catalog(books)
    first = write(catalog, action="loan_title", title="rayuela", borrower="A")
    second = write(catalog, action="loan_title", title="RAYUELA", borrower="B")
    assert [first["book"]["ISBN"], second["book"]["ISBN"]] == [books[0]["ISBN"],
                                                               books[1]["ISBN"]]


def test_return_clears_the_loan_and_a_second_return_is_not_loaned() -> None:
    catalog = shipped()
    write(catalog, action="loan_isbn", isbn="9780140449266", borrower="Guillermo")
    reply = write(catalog, action="return_isbn", isbn="978-0-14-044926-6")
    assert reply["code"] == Code.OK
    assert catalog.get("9780140449266")["estado"] == AVAILABLE
    assert catalog.get("9780140449266")["prestatario"] is None
    again = write(catalog, action="return_isbn", isbn="9780140449266")
    assert again["code"] == Code.NOT_LOANED


def test_unknown_isbns_valid_and_malformed() -> None:
    catalog = shipped()
    assert write(catalog, action="return_isbn", isbn="9780000000002")["code"] == Code.NOT_FOUND
    assert write(catalog, action="loan_isbn", isbn="9780000000003",
                 borrower="A")["code"] == Code.BAD_REQUEST
    assert write(catalog, action="loan_isbn", isbn="12345", borrower="A")["code"] == \
        Code.BAD_REQUEST
    query = answer_read(req(action="query_isbn", isbn="9780000000002"), catalog, Policy())
    assert (query["code"], query["found"]) == (Code.NOT_FOUND, False)


def test_a_stored_isbn_with_a_bad_check_digit_is_still_served() -> None:
    catalog = Catalog.from_bytes(CLASS_DB.read_bytes())
    bad = next(b["ISBN"] for b in catalog if b["ISBN"] == "9788491050297")
    reply = answer_read(req(action="query_isbn", isbn=bad), catalog, Policy())
    assert reply["found"] and reply["book"]["ISBN"] == bad


def test_query_title_finds_substrings_ignoring_case_and_accents() -> None:
    catalog = shipped()
    reply = answer_read(req(action="query_title", title="GARCIA"), catalog, Policy())
    assert reply["code"] == Code.NOT_FOUND  # authors are not titles
    reply = answer_read(req(action="query_title", title="AMOR en los tiempos"), catalog,
                        Policy())
    assert reply["found"] and reply["books"][0]["titulo"] == "El amor en los tiempos del cólera"
    many = answer_read(req(action="query_title", title="de", limit=2), catalog, Policy())
    assert len(many["books"]) == 2 and many["total"] > 2


def test_catalog_pages_cover_every_book_once() -> None:
    catalog = shipped()
    seen = []
    for offset in range(0, len(catalog) + 10, 10):
        reply = answer_read(req(action="catalog", offset=offset, limit=10), catalog, Policy())
        seen += [b["ISBN"] for b in reply["books"]]
    assert seen == [b["ISBN"] for b in catalog]


def test_spanish_messages_match_the_class_page() -> None:
    catalog = shipped()
    es = Policy(lang="es")
    ok = write(catalog, es, action="loan_title", title="La sombra del viento", borrower="Samuel")
    assert ok["message"].startswith("Préstamo exitoso: 'La sombra del viento' prestado a Samuel")
    taken = write(catalog, es, action="loan_title", title="La sombra del viento",
                  borrower="Guillermo")
    assert taken["message"].startswith("El libro 'La sombra del viento' no está disponible")
