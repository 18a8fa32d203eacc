"""The library's domain rules that do not depend on the wire: ISBNs and how text compares.

Imported by the catalog, the protocol and the generators; it imports nothing of the kit.
"""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Fold text for comparison: no accents, no case, single spaces, trimmed."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def has_surrogates(text: str) -> bool:
    """True when `text` holds a lone surrogate, which cannot be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_isbn(raw: str) -> str:
    """Drop the hyphens and spaces people type inside ISBNs; upper-case a trailing x."""
    if raw.isdigit():
        return raw
    return raw.replace("-", "").replace(" ", "").replace("\t", "").upper()


def isbn13_is_valid(isbn: str) -> bool:
    """True for 13 digits whose check digit adds up (ISBN-13 / EAN-13)."""
    if len(isbn) != 13 or not isbn.isascii() or not isbn.isdigit():
        return False
    return isbn13_check_digit(isbn[:12]) == isbn[12]


def isbn13_check_digit(first12: str) -> str:
    """The check digit that completes 12 ASCII digits into an ISBN-13."""
    digits = first12.encode("ascii")
    total = sum(digits[0:12:2]) + 3 * sum(digits[1:12:2]) - 48 * 24  # 48 is ord("0")
    return str((10 - total % 10) % 10)
