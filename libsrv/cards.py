"""The HTML a reply or a catalog is shown as: cards and tables, every value escaped.

Plain functions, no widgets: `Reply._repr_html_` uses them in any notebook, and the forms in
`libsrv.ui` put them in their output areas.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from libsrv.catalog import LENT
from libsrv.messages import word

if TYPE_CHECKING:  # the client imports this module for its HTML; only a type goes back
    from libsrv.client import Reply

LENT_COLOUR, FREE_COLOUR, ERROR_COLOUR, OK_COLOUR = "#c0392b", "#1e8449", "#922b21", "#1e8449"
FIELDS = ("ISBN", "titulo", "autores", "estado", "prestatario", "fecha_prestamo",
          "fecha_devolucion")  # a book's seven fields, in the class's order


def _text(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def book_card(book: dict[str, Any] | None, message: str, *, success: bool,
              code: str = "", lang: str = "en") -> str:
    """HTML for one reply: the message (green or red) and the book's seven fields, labelled
    in `lang`. Every value is escaped."""
    colour = OK_COLOUR if success else ERROR_COLOUR
    mark = "✓" if success else "✗"
    head = (f'<div class="libsrv-message" style="color:{colour};font-weight:bold">{mark} '
            f'{html.escape(message)}'
            + (f' <span style="opacity:.6">({html.escape(code)})</span>' if code else "")
            + "</div>")
    if not book:
        return f'<div class="libsrv-card">{head}</div>'
    rows = []
    for field in FIELDS:
        label = html.escape(word(f"col_{field}", lang))
        value = _text(book.get(field))
        if field == "estado":
            tint = LENT_COLOUR if book.get("estado") == LENT else FREE_COLOUR
            value = (f'<span class="libsrv-estado" style="background:{tint};color:white;'
                     f'padding:1px 8px;border-radius:8px">{value}</span>')
        rows.append(f"<tr><th style='text-align:left;padding-right:1em'>{label}</th>"
                    f"<td>{value}</td></tr>")
    return (f'<div class="libsrv-card" style="border:1px solid #ccc;border-radius:6px;'
            f'padding:8px;max-width:36em">{head}<table>{"".join(rows)}</table></div>')


def reply_card(reply: Reply, lang: str = "en") -> str:
    return book_card(reply.book, reply.message, success=reply.success, code=reply.code,
                     lang=lang)


def catalog_table(books: list[dict[str, Any]], text: str = "", lang: str = "en") -> str:
    """An HTML table of books whose ISBN, title, authors or borrower contain `text`, headed
    in `lang`."""
    needle = text.strip().casefold()
    shown = [b for b in books if not needle or needle in " ".join(
        _text(b.get(f)) for f in ("ISBN", "titulo", "autores", "prestatario")).casefold()]
    head = "".join(f"<th style='text-align:left'>{html.escape(word(f'col_{field}', lang))}</th>"
                   for field in FIELDS)
    rows = []
    for book in shown:
        tint = LENT_COLOUR if book.get("estado") == LENT else FREE_COLOUR
        cells = "".join(
            f"<td style='color:{tint};white-space:nowrap'>{_text(book.get(f))}</td>"
            if f == "estado"
            else f"<td>{_text(book.get(f))}</td>" for f in FIELDS)
        rows.append(f"<tr>{cells}</tr>")
    count = word("books_shown", lang, shown=len(shown), total=len(books))
    return (f"<div class='libsrv-count'>{count}</div>"
            f"<table class='libsrv-catalog'><tr>{head}</tr>{''.join(rows)}</table>")


def unreachable_message(endpoint: str, error: Exception, lang: str = "en") -> str:
    return book_card(None, word("unreachable", lang, endpoint=endpoint, error=error),
                     success=False, code="UNREACHABLE")
