"""The catalog in memory: books in the class's seven-field format, and look-ups. No I/O.

A book is a dict with exactly the class's fields, in the class's order::

    {"ISBN": "9788437604947", "titulo": "Don Quijote de la Mancha",
     "autores": ["Miguel de Cervantes"], "estado": "no prestado",
     "prestatario": None, "fecha_prestamo": None, "fecha_devolucion": None}

A catalog document is the class's ``{"libros": [...]}`` or a bare list; it is written back in the
shape it was read in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from libsrv.domain import fold, has_surrogates, isbn13_is_valid, normalize_isbn

BOOK_FIELDS = ("ISBN", "titulo", "autores", "estado", "prestatario", "fecha_prestamo",
               "fecha_devolucion")
LENT = "prestado"
AVAILABLE = "no prestado"
DOCUMENT_KEY = "libros"

Book = dict[str, Any]


class CatalogError(ValueError):
    """The catalog document cannot be used; the message says where and why."""


def _check_text(value: object, where: str, field: str, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise CatalogError(f"{where}: '{field}' must be text, not {type(value).__name__}")
    if has_surrogates(value):
        raise CatalogError(f"{where}: '{field}' holds invalid Unicode")


_FIELD_SET = frozenset(BOOK_FIELDS)
PRETTY_MAX_BOOKS = 10_000  # larger catalogs are written one book per line, which is faster
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def _is_plain_book(raw: object) -> bool:
    """The fast check that almost every stored book passes: exactly the seven fields, text
    where text belongs, a known state, and no lone surrogates anywhere."""
    if type(raw) is not dict or raw.keys() != _FIELD_SET:
        return False
    isbn, authors = raw["ISBN"], raw["autores"]
    if type(isbn) is not str or not isbn.isascii() or type(authors) is not list:
        return False
    nullable = (raw["prestatario"], raw["fecha_prestamo"], raw["fecha_devolucion"])
    if raw["estado"] == AVAILABLE:
        if nullable != (None, None, None):
            return False
    elif raw["estado"] != LENT:
        return False
    texts = [raw["titulo"], *authors, *(v for v in nullable if v is not None)]
    return all(type(t) is str for t in texts) and not has_surrogates("".join(texts))


def validate_book(raw: object, position: int) -> Book:
    """A clean copy of one stored book, or CatalogError naming the book and field."""
    if _is_plain_book(raw):
        return raw if list(raw) == list(BOOK_FIELDS) else {  # type: ignore[arg-type, return-value]
            field: raw[field] for field in BOOK_FIELDS}  # type: ignore[index]
    where = f"book #{position + 1}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected an object, got {type(raw).__name__}")
    missing = [f for f in BOOK_FIELDS if f not in raw]
    if missing:
        raise CatalogError(f"{where}: missing field(s) {', '.join(missing)}")
    _check_text(raw["ISBN"], where, "ISBN", nullable=False)
    where = f"book #{position + 1} (ISBN {raw['ISBN']})"
    _check_text(raw["titulo"], where, "titulo", nullable=False)
    autores = raw["autores"]
    if not isinstance(autores, list):
        raise CatalogError(f"{where}: 'autores' must be a list of names")
    for name in autores:
        _check_text(name, where, "autores", nullable=False)
    if raw["estado"] not in (LENT, AVAILABLE):
        raise CatalogError(f"{where}: 'estado' must be '{LENT}' or '{AVAILABLE}'")
    for field in ("prestatario", "fecha_prestamo", "fecha_devolucion"):
        _check_text(raw[field], where, field, nullable=True)
    if not normalize_isbn(raw["ISBN"]):
        raise CatalogError(f"{where}: empty ISBN")
    return {field: raw[field] for field in BOOK_FIELDS}


def document_bytes(books: list[Book], *, shape: str = "object") -> bytes:
    """A catalog file as the class wrote it: UTF-8, two-space indent, accents kept. Past
    PRETTY_MAX_BOOKS books, one book per line: the same JSON, written faster (docs/bench.md)."""
    if len(books) <= PRETTY_MAX_BOOKS:
        document: object = {DOCUMENT_KEY: books} if shape == "object" else books
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    lines = ",\n".join("  " + _COMPACT.encode(book) for book in books)
    body = f"[\n{lines}\n]"
    text = f'{{"{DOCUMENT_KEY}": {body}}}' if shape == "object" else body
    return (text + "\n").encode("utf-8")


class Catalog:
    """Books by normalised ISBN, in file order, with a title index.

    Titles never change, so the title index is built once. `replace` swaps a book's record
    (after a loan or return); it must be a book already in the catalog.
    """

    def __init__(self, books: list[Book], *, shape: str = "object") -> None:
        self.shape = shape
        self._books: dict[str, Book] = {}
        self._titles: dict[str, list[str]] | None = None  # built on first use
        self._folded: list[tuple[str, str]] = []
        self._order: list[str] = []
        self.warnings: list[str] = []
        for position, raw in enumerate(books):
            book = validate_book(raw, position)
            key = normalize_isbn(book["ISBN"])
            if key in self._books:
                raise CatalogError(f"book #{position + 1}: ISBN {book['ISBN']} appears twice")
            if not isbn13_is_valid(key):
                self.warnings.append(
                    f"book #{position + 1}: ISBN {book['ISBN']} is not a valid ISBN-13 "
                    "(wrong length or check digit); it is served under that ISBN anyway")
            self._books[key] = book
            self._order.append(key)

    def _title_index(self) -> dict[str, list[str]]:
        """Folded title → ISBNs, built the first time a title is asked for."""
        if self._titles is None:
            titles: dict[str, list[str]] = {}
            for key in self._order:
                folded = fold(self._books[key]["titulo"])
                titles.setdefault(folded, []).append(key)
                self._folded.append((folded, key))
            self._titles = titles
        return self._titles

    @classmethod
    def from_document(cls, document: object) -> Catalog:
        """Build from a parsed catalog file: ``{"libros": [...]}`` or a bare list."""
        if isinstance(document, dict):
            if not isinstance(document.get(DOCUMENT_KEY), list):
                raise CatalogError(f"the catalog object needs a '{DOCUMENT_KEY}' list")
            return cls(document[DOCUMENT_KEY], shape="object")
        if isinstance(document, list):
            return cls(document, shape="list")
        raise CatalogError("a catalog is {\"libros\": [...]} or a list of books")

    @classmethod
    def from_bytes(cls, data: bytes, source: Path | str | None = None) -> Catalog:
        """The catalog in a file's bytes; errors name `source`, the file, when given."""
        try:
            try:
                document = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise CatalogError(f"not valid JSON: {exc}") from None
            return cls.from_document(document)
        except CatalogError as exc:
            if source is None:
                raise
            raise CatalogError(f"the catalog file {source} cannot be used: {exc}") from None

    def to_document(self) -> object:
        books = list(self._books.values())
        return {DOCUMENT_KEY: books} if self.shape == "object" else books

    def to_bytes(self) -> bytes:
        return document_bytes(list(self._books.values()), shape=self.shape)

    def snapshot(self) -> list[Book]:
        """The books as they are now, in file order. A shallow copy is enough: `replace`
        swaps records and never changes one in place, so this list stays as it was while the
        catalog moves on (a snapshot can be written from it on another thread)."""
        return list(self._books.values())

    def __len__(self) -> int:
        return len(self._books)

    def __iter__(self) -> Iterator[Book]:
        return iter(self._books.values())

    def get(self, isbn: str) -> Book | None:
        """The book with this ISBN (hyphens and spaces ignored), or None."""
        return self._books.get(normalize_isbn(isbn))

    def replace(self, book: Book) -> None:
        key = normalize_isbn(book["ISBN"])
        if key not in self._books:
            raise KeyError(key)
        self._books[key] = book

    def with_title(self, title: str) -> list[Book]:
        """Books whose title equals `title`, ignoring case, accents and extra spaces."""
        return [self._books[key] for key in self._title_index().get(fold(title), ())]

    def search_title(self, text: str, offset: int, limit: int) -> tuple[list[Book], int]:
        """Books whose folded title contains the folded `text`: one page, and the total."""
        needle = fold(text)
        self._title_index()
        keys = [key for folded, key in self._folded if needle in folded]
        return [self._books[k] for k in keys[offset:offset + limit]], len(keys)

    def page(self, offset: int, limit: int) -> list[Book]:
        """Books `offset` to `offset + limit` in file order."""
        return [self._books[key] for key in self._order[offset:offset + limit]]
