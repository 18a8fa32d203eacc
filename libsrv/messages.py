"""Human-readable reply messages, in English and Spanish.

Replies carry a machine-readable `code`; `message` is the sentence a person reads, in the
server's ``--lang`` when it is given, else per request: Spanish to a request that names its
action the class's Spanish way, English otherwise (`Policy.language`).
"""

from __future__ import annotations

LANGUAGES = ("en", "es")

_MESSAGES: dict[str, dict[str, str]] = {
    # protocol errors
    "frames": {
        "en": "A request is exactly one frame; this one had {count}.",
        "es": "Una petición es exactamente un frame; esta tenía {count}.",
    },
    "http_method": {
        "en": "Send POST /<action> with a JSON body; {method} is not served.",
        "es": "Envía POST /<acción> con un cuerpo JSON; {method} no se atiende.",
    },
    "too_big": {
        "en": "The request is larger than {limit} bytes.",
        "es": "La petición supera los {limit} bytes.",
    },
    "bad_utf8": {
        "en": "The request is not valid UTF-8 text.",
        "es": "La petición no es texto UTF-8 válido.",
    },
    "bad_json": {
        "en": "The request is not valid JSON.",
        "es": "La petición no es JSON válido.",
    },
    "not_object": {
        "en": "The request must be a JSON object.",
        "es": "La petición debe ser un objeto JSON.",
    },
    "bad_version": {
        "en": "Unsupported protocol version; this server speaks v={version}.",
        "es": "Versión de protocolo no soportada; este servidor habla v={version}.",
    },
    "bad_id": {
        "en": "The request id must be a non-empty string of at most {limit} characters.",
        "es": "El id de la petición debe ser un texto no vacío de como mucho {limit} caracteres.",
    },
    "unknown_action": {
        "en": "Unknown action {given}; the actions are {known}.",
        "es": "Acción desconocida: {given}; las acciones son {known}.",
    },
    "missing_field": {
        "en": "The field '{field}' is missing.",
        "es": "Falta el campo '{field}'.",
    },
    "use_field": {
        "en": "The field is called '{field}', not '{given}'.",
        "es": "El campo se llama '{field}', no '{given}'.",
    },
    "wrong_type": {
        "en": "The field '{field}' must be a {expected}.",
        "es": "El campo '{field}' debe ser de tipo {expected}.",
    },
    "blank_field": {
        "en": "The field '{field}' is empty.",
        "es": "El campo '{field}' está vacío.",
    },
    "too_long": {
        "en": "The field '{field}' is longer than {limit} characters.",
        "es": "El campo '{field}' tiene más de {limit} caracteres.",
    },
    "bad_text": {
        "en": "The field '{field}' holds characters that are not valid Unicode.",
        "es": "El campo '{field}' contiene caracteres Unicode no válidos.",
    },
    "control_chars": {
        "en": "The field '{field}' holds control characters.",
        "es": "El campo '{field}' contiene caracteres de control.",
    },
    "out_of_range": {
        "en": "The field '{field}' must be between {low} and {high}.",
        "es": "El campo '{field}' debe estar entre {low} y {high}.",
    },
    "bad_isbn": {
        "en": "'{isbn}' is not a valid ISBN-13.",
        "es": "'{isbn}' no es un ISBN-13 válido.",
    },
    "id_reused": {
        "en": "The request id '{id}' was already used for a different request.",
        "es": "El id de petición '{id}' ya se usó para otra petición.",
    },
    # outcomes
    "pong": {"en": "pong", "es": "pong"},
    "found": {
        "en": "Book found: '{title}'.",
        "es": "Libro encontrado: '{title}'.",
    },
    "found_many": {
        "en": "{count} book(s) match '{text}'.",
        "es": "{count} libro(s) coinciden con '{text}'.",
    },
    "isbn_not_found": {
        "en": "No book has ISBN {isbn}.",
        "es": "No existe ningún libro con ISBN {isbn}.",
    },
    "title_not_found": {
        "en": "No book has the title '{text}'.",
        "es": "No existe ningún libro con el título '{text}'.",
    },
    "loaned": {
        "en": "Loan done: '{title}' lent to {borrower} until {due}.",
        "es": "Préstamo exitoso: '{title}' prestado a {borrower} hasta el {due}.",
    },
    "unavailable": {
        "en": "'{title}' is not available; it is due back on {due}.",
        "es": "El libro '{title}' no está disponible. Fecha de devolución: {due}",
    },
    "returned": {
        "en": "Return done: '{title}' is available again.",
        "es": "Devolución exitosa: '{title}' ha sido devuelto.",
    },
    "not_loaned": {
        "en": "'{title}' is not on loan, so it cannot be returned.",
        "es": "El libro '{title}' no está prestado, así que no se puede devolver.",
    },
    "catalog_page": {
        "en": "Books {first} to {last} of {total}.",
        "es": "Libros {first} a {last} de {total}.",
    },
    "catalog_past_end": {
        "en": "No books from position {offset} on; the catalog has {total}.",
        "es": "No hay libros a partir de la posición {offset}; el catálogo tiene {total}.",
    },
    "stats": {"en": "Server statistics.", "es": "Estadísticas del servidor."},
    "internal": {
        "en": "The server could not complete the request: {reason}",
        "es": "El servidor no pudo completar la petición: {reason}",
    },
}


def render(key: str, lang: str = "en", **params: object) -> str:
    """The message `key` in `lang` (English when unknown), filled with `params`."""
    texts = _MESSAGES[key]
    template = texts.get(lang, texts["en"])
    return template.format(**params)


# The words of the widgets and the forms page (tabs, buttons, fields, statuses), as the
# class's own page had them in Spanish ("Consultar", "Solicitar Préstamo", "Prestatario").
_WORDS: dict[str, dict[str, str]] = {
    "page_title": {"en": "Library", "es": "Biblioteca"},
    "page_hint": {"en": "Query, loan and return books: pick a tab, fill in the fields, press "
                        "the button.",
                  "es": "Consulta, préstamo y devolución de libros: elige una pestaña, "
                        "rellena los campos y pulsa el botón."},
    "server": {"en": "Server", "es": "Servidor"},
    "tab_query_isbn": {"en": "Query by ISBN", "es": "Consulta ISBN"},
    "tab_query_title": {"en": "Query by title", "es": "Consulta título"},
    "tab_loan_isbn": {"en": "Loan by ISBN", "es": "Préstamo ISBN"},
    "tab_loan_title": {"en": "Loan by title", "es": "Préstamo título"},
    "tab_return": {"en": "Return", "es": "Devolución"},
    "tab_catalog": {"en": "Catalog", "es": "Catálogo"},
    "button_query": {"en": "Query", "es": "Consultar"},
    "button_search": {"en": "Search", "es": "Buscar"},
    "button_loan": {"en": "Loan", "es": "Solicitar préstamo"},
    "button_return": {"en": "Return", "es": "Devolver libro"},
    "field_isbn": {"en": "ISBN", "es": "ISBN"},
    "field_title": {"en": "Title", "es": "Título"},
    "field_borrower": {"en": "Borrower", "es": "Prestatario"},
    "filter": {"en": "Filter", "es": "Filtrar"},
    "filter_hint": {"en": "title, author…", "es": "título, autor…"},
    "refresh": {"en": "Refresh", "es": "Actualizar"},
    "waiting": {"en": "waiting for the server…", "es": "esperando al servidor…"},
    "loading": {"en": "loading…", "es": "cargando…"},
    "live": {"en": "live", "es": "en vivo"},
    "change": {"en": "change", "es": "cambio"},
    "connecting": {"en": "connecting to the live feed…",
                   "es": "conectando con los cambios en vivo…"},
    "not_live_big": {"en": "not live: {total:,} books is more than the table shows; use "
                           "Refresh",
                     "es": "sin cambios en vivo: {total:,} libros son más de los que muestra la "
                           "tabla; use Actualizar"},
    "not_live_no_feed": {"en": "not live: this server publishes no changes",
                         "es": "sin cambios en vivo: este servidor no publica cambios"},
    "not_live_silent": {"en": "not live: the server did not answer",
                        "es": "sin cambios en vivo: el servidor no respondió"},
    "books_shown": {"en": "{shown} of {total} books", "es": "{shown} de {total} libros"},
    "unreachable": {"en": "No answer from the server at {endpoint}: {error}",
                    "es": "El servidor en {endpoint} no responde: {error}"},
    "counter": {"en": "<b>{loans:,}</b> loans · <b>{returns:,}</b> returns",
                "es": "<b>{loans:,}</b> préstamos · <b>{returns:,}</b> devoluciones"},
    "counter_seq": {"en": "change #{seq:,} · {resyncs} re-sync(s) after a gap",
                    "es": "cambio n.º {seq:,} · {resyncs} resincronización(es) tras un hueco"},
    "counter_summary": {"en": "seen live: {loans:,} loans and {returns:,} returns (changes "
                              "#{first:,} to #{last:,})",
                        "es": "visto en vivo: {loans:,} préstamos y {returns:,} devoluciones "
                              "(cambios n.º {first:,} a n.º {last:,})"},
    "col_ISBN": {"en": "ISBN", "es": "ISBN"},
    "col_titulo": {"en": "Title", "es": "Título"},
    "col_autores": {"en": "Authors", "es": "Autores"},
    "col_estado": {"en": "Status", "es": "Estado"},
    "col_prestatario": {"en": "Borrower", "es": "Prestatario"},
    "col_fecha_prestamo": {"en": "Loaned on", "es": "Fecha de préstamo"},
    "col_fecha_devolucion": {"en": "Due", "es": "Fecha de devolución"},
}


def word(key: str, lang: str = "en", **params: object) -> str:
    """The widget word `key` in `lang` (English when unknown), filled with `params`."""
    texts = _WORDS[key]
    return texts.get(lang, texts["en"]).format(**params)


def word_keys() -> frozenset[str]:
    return frozenset(_WORDS)


def keys() -> frozenset[str]:
    return frozenset(_MESSAGES)
