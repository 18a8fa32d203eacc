"""The HTML a reply or a catalog is shown as: cards and tables, every value escaped.

Plain functions, no widgets: `Reply._repr_html_` uses them in any notebook, and the forms in
`libsrv.ui` put them in their output areas.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from libsrv.catalog import LENT

if TYPE_CHECKING:  # the client imports this module for its HTML; only a type goes back
    from libsrv.client import Reply

LENT_COLOUR, FREE_COLOUR, ERROR_COLOUR, OK_COLOUR = "#c0392b", "#1e8449", "#922b21", "#1e8449"
FIELD_LABELS = (("ISBN", "ISBN"), ("titulo", "Title / Título"), ("autores", "Authors / Autores"),
                ("estado", "Status / Estado"), ("prestatario", "Borrower / Prestatario"),
                ("fecha_prestamo", "Loaned on / Fecha préstamo"),
                ("fecha_devolucion", "Due / Fecha devolución"))


def _text(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def book_card(book: dict[str, Any] | None, message: str, *, success: bool,
              code: str = "") -> str:
    """HTML for one reply: the message (green or red) and the book's seven fields. Every
    value is escaped."""
    colour = OK_COLOUR if success else ERROR_COLOUR
    mark = "✓" if success else "✗"
    head = (f'<div class="libsrv-message" style="color:{colour};font-weight:bold">{mark} '
            f'{html.escape(message)}'
            + (f' <span style="opacity:.6">({html.escape(code)})</span>' if code else "")
            + "</div>")
    if not book:
        return f'<div class="libsrv-card">{head}</div>'
    rows = []
    for field, label in FIELD_LABELS:
        value = _text(book.get(field))
        if field == "estado":
            tint = LENT_COLOUR if book.get("estado") == LENT else FREE_COLOUR
            value = (f'<span class="libsrv-estado" style="background:{tint};color:white;'
                     f'padding:1px 8px;border-radius:8px">{value}</span>')
        rows.append(f"<tr><th style='text-align:left;padding-right:1em'>{label}</th>"
                    f"<td>{value}</td></tr>")
    return (f'<div class="libsrv-card" style="border:1px solid #ccc;border-radius:6px;'
            f'padding:8px;max-width:36em">{head}<table>{"".join(rows)}</table></div>')


def reply_card(reply: Reply) -> str:
    return book_card(reply.book, reply.message, success=reply.success, code=reply.code)


def catalog_table(books: list[dict[str, Any]], text: str = "") -> str:
    """An HTML table of books whose ISBN, title, authors or borrower contain `text`."""
    needle = text.strip().casefold()
    shown = [b for b in books if not needle or needle in " ".join(
        _text(b.get(f)) for f in ("ISBN", "titulo", "autores", "prestatario")).casefold()]
    head = "".join(f"<th style='text-align:left'>{label.split(' / ')[0]}</th>"
                   for _, label in FIELD_LABELS)
    rows = []
    for book in shown:
        tint = LENT_COLOUR if book.get("estado") == LENT else FREE_COLOUR
        cells = "".join(
            f"<td style='color:{tint}'>{_text(book.get(f))}</td>" if f == "estado"
            else f"<td>{_text(book.get(f))}</td>" for f, _ in FIELD_LABELS)
        rows.append(f"<tr>{cells}</tr>")
    return (f"<div class='libsrv-count'>{len(shown)} of {len(books)} books</div>"
            f"<table class='libsrv-catalog'><tr>{head}</tr>{''.join(rows)}</table>")


def unreachable_message(endpoint: str, error: Exception) -> str:
    return book_card(None, f"No answer from the server at {endpoint}: {error}", success=False,
                     code="UNREACHABLE")
