"""Synthetic catalogs of any size (a million books included) for experiments.

Books get unique, valid ISBN-13s (prefix 979-8, then a running number, then the check digit),
titles made of Spanish words, and one or two authors. The same seed gives the same catalog.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from libsrv.catalog import AVAILABLE, document_bytes
from libsrv.domain import isbn13_check_digit

_NOUNS = (
    "sombra", "viento", "casa", "noche", "río", "ciudad", "jardín", "memoria", "silencio", "mar",
    "camino", "espejo", "tiempo", "guerra", "ciudadela", "isla", "laberinto", "puerta", "reloj",
    "bosque", "invierno", "verano", "fuego", "biblioteca", "carta", "sueño", "montaña", "desierto",
    "tren", "puente", "faro", "ventana", "lluvia"
)
_ADJECTIVES = (
    "perdido", "oscuro", "último", "secreto", "eterno", "blanco", "rojo", "antiguo", "olvidado",
    "infinito", "dormido", "lejano", "breve", "nuevo", "roto", "invisible", "dorado", "salvaje"
)
_FIRST = (
    "Ana", "Carlos", "Lucía", "Mateo", "Sofía", "Diego", "Elena", "Pablo", "Julia", "Andrés",
    "Valentina", "Tomás", "Isabel", "Gabriel", "Camila", "Martín", "Laura", "Hugo", "Paula",
    "Samuel"
)
_LAST = (
    "García", "Rodríguez", "Martínez", "López", "Hernández", "Gómez", "Díaz", "Torres", "Ramírez",
    "Flores", "Vargas", "Castro", "Rojas", "Moreno", "Ortiz", "Silva", "Romero", "Navarro",
    "Aponte", "Pico"
)
MAX_BOOKS = 100_000_000


def isbn_for(number: int) -> str:
    """The `number`-th synthetic ISBN-13 (valid check digit, 979-8 prefix)."""
    first12 = f"9798{number:08d}"
    return first12 + isbn13_check_digit(first12)


def make_books(count: int, *, seed: int = 1) -> list[dict[str, Any]]:
    """`count` available books with unique ISBNs; the same seed gives the same books."""
    if not 0 <= count <= MAX_BOOKS:
        raise ValueError(f"count must be between 0 and {MAX_BOOKS}")
    rng = random.Random(seed)
    books = []
    for number in range(count):
        title = f"El {rng.choice(_NOUNS)} {rng.choice(_ADJECTIVES)} {number + 1}"
        authors = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
                   for _ in range(1 if rng.random() < 0.8 else 2)]
        books.append({"ISBN": isbn_for(number), "titulo": title, "autores": authors,
                      "estado": AVAILABLE, "prestatario": None, "fecha_prestamo": None,
                      "fecha_devolucion": None})
    return books


def write_catalog(path: Path | str, count: int, *, seed: int = 1) -> Path:
    """Write a catalog of `count` books in the class's ``{"libros": [...]}`` format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(document_bytes(make_books(count, seed=seed)))
    return path
