"""What the bench says about a run, in the class's language ("es") or English ("en"), rendered
from facts: the verifier's findings, the reasons a run is not clean, and the grader's checks.

The verifier, the judgement and the grader record a key and its facts (numbers, ISBNs, titles,
times); `say(key, facts, lang)` turns them into a sentence, so a finding stored in English in
``violations.json`` can be shown in Spanish later. One template per key per language. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libsrv.defaults import DEFAULT_PAGE_LANG
from libsrv.messages import LANGUAGES

_STATES = {"es": {"lent": "prestado", "available": "disponible"},
           "en": {"lent": "lent", "available": "available"}}
_OPS = {"es": {"loan": "el préstamo", "return": "la devolución", "query": "la consulta"},
        "en": {"loan": "loan", "return": "return", "query": "query"}}

_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        # the verifier's findings
        "double-loan": "client {client} was told its loan of {book} succeeded {when}, but in "
                       "every order of the acknowledged operations the book was already lent "
                       "then: two borrowers hold it; the loan should have been refused as "
                       "UNAVAILABLE (the book started {start}).",
        "double-return": "client {client} was told its return of {book} succeeded {when}, but "
                         "in every order of the acknowledged operations nobody had it then: a "
                         "return was counted twice or a loan lost; it should have been refused "
                         "as NOT_LOANED (the book started {start}).",
        "stale-read": "client {client} queried {book} {when} and saw it {saw}, which no order "
                      "of the acknowledged loans and returns allows: an old state was served; "
                      "it should have shown every write acknowledged before it was asked (the "
                      "book started {start}).",
        "wrong-refusal": "client {client}'s {op} of {book} was refused {when} as if the book "
                         "were {saw}, but in every order of the acknowledged operations it was "
                         "not; it should have succeeded (the book started {start}).",
        "when": "between {invoke_ms} and {complete_ms} ms",
        "final-state": "after the run the server shows {book} {state}, but no order of its "
                       "{loans} acknowledged loans and {returns} acknowledged returns{unknown}, "
                       "starting {start}, ends that way: an update was lost; it should show "
                       "{other}",
        "final-state-unknown": " (and {unknown} writes of unknown outcome)",
        "wrong-borrower": "client {client} was told its loan of {book} succeeded, but the "
                          "record shows {shown!r} instead of {borrower!r}",
        "file-mismatch": "the catalog file holds {on_disk!r} for {book} but the server last "
                         "served {served!r}",
        "wrong-book": "client {client} asked for {isbn} ({action}) and the reply, received at "
                      "{at_ms} ms, showed the book {shown} instead{more}: a reply must be about "
                      "the book asked for",
        "wrong-book-more": " ({count} such replies about this book)",
        "file-unreadable": "after the run the catalog file cannot be read ({error}): concurrent "
                           "writes broke it, and every book in it is lost to the next start",
        # why a run is not clean
        "anomalies": "{count} anomalies: lost or doubled updates, or answers no order of the "
                     "operations explains (see violations.json)",
        "undecided": "{count} book(s) too tangled for the verifier to decide within its "
                     "budget: their history proves nothing either way",
        "no-answer": "no request was answered in the measured time",
        "as-given": "{text}",
        "errors": "{share:.1%} of the requests failed (errors, timeouts and books of the "
                  "catalog not found: {codes}), more than the {allowed:.1%} --max-errors "
                  "allows: a server that does not answer gives the verifier nothing to check",
        "no-writes": "no loan or return was acknowledged: there was no update to lose, so the "
                     "verdict proves nothing",
        # the grader's checks
        "expected": "expected {code}, got {got}{wrong}",
        "expected-wrong-book": " (the book shown is not right)",
        "no-free-book": "the catalog has no available book",
        "loan-without-borrower": "a loan without a borrower got {got}",
        "got": "got {got}{hang}",
        "got-hang": " (the REQ client would hang)",
        "start-failed": "the server {failure}",
        "file-broken": "the file cannot be read: {error}",
        "nothing-acknowledged": "no loan was acknowledged before the kill",
        "crash": "{acked} loans acknowledged before the kill; missing from the file after it: "
                 "{lost}; shown as not lent by the restarted server: {shown}",
        "fight-clean": "no anomaly in {requests:,} requests ({writes:,} acknowledged writes)",
        "fight-not-clean": "not clean",
        "raised": "{kind}: {error}",
        # the grader's progress, one line per step
        "step-start": "{group}: starting {command}",
        "step-protocol": "{group}: protocol check",
        "step-fight": "{group}: the concurrency fight",
        "step-speed": "{group}: latency and throughput at {clients} client(s)",
        "step-crash": "{group}: SIGKILL and restart",
    },
    "es": {
        "double-loan": "al cliente {client} se le confirmó el préstamo de {book} {when}, pero "
                       "en todo orden posible de las operaciones confirmadas el libro ya estaba "
                       "prestado entonces: lo tienen dos prestatarios; el préstamo debía "
                       "rechazarse como UNAVAILABLE (el libro empezó {start}).",
        "double-return": "al cliente {client} se le confirmó la devolución de {book} {when}, "
                         "pero en todo orden posible de las operaciones confirmadas nadie lo "
                         "tenía entonces: una devolución contada dos veces o un préstamo "
                         "perdido; debía rechazarse como NOT_LOANED (el libro empezó {start}).",
        "stale-read": "el cliente {client} consultó {book} {when} y lo vio {saw}, lo que "
                      "ningún orden de los préstamos y devoluciones confirmados permite: se "
                      "sirvió un estado antiguo; debía mostrar toda escritura confirmada antes "
                      "de la consulta (el libro empezó {start}).",
        "wrong-refusal": "al cliente {client} se le rechazó {op} de {book} {when} como si el "
                         "libro estuviera {saw}, pero en todo orden posible de las operaciones "
                         "confirmadas no lo estaba; debía salir bien (el libro empezó {start}).",
        "when": "entre los {invoke_ms} y los {complete_ms} ms",
        "final-state": "tras la ejecución el servidor muestra {book} {state}, pero ningún orden "
                       "de sus {loans} préstamos y {returns} devoluciones confirmados{unknown}, "
                       "empezando {start}, acaba así: se perdió una actualización; debería "
                       "mostrarlo {other}",
        "final-state-unknown": " (y {unknown} escrituras de resultado desconocido)",
        "wrong-borrower": "al cliente {client} se le confirmó el préstamo de {book}, pero el "
                          "registro muestra {shown!r} en vez de {borrower!r}",
        "file-mismatch": "el archivo del catálogo guarda {on_disk!r} para {book}, pero el "
                         "servidor sirvió por última vez {served!r}",
        "wrong-book": "el cliente {client} pidió {isbn} ({action}) y la respuesta, recibida a "
                      "los {at_ms} ms, mostraba otro libro, {shown}{more}: una respuesta tiene "
                      "que ser sobre el libro pedido",
        "wrong-book-more": " ({count} respuestas así sobre este libro)",
        "file-unreadable": "tras la ejecución el archivo del catálogo no se puede leer "
                           "({error}): las escrituras concurrentes lo rompieron, y todos sus "
                           "libros se pierden para el próximo arranque",
        "anomalies": "{count} anomalías: actualizaciones perdidas o duplicadas, o respuestas "
                     "que ningún orden de las operaciones explica (ver violations.json)",
        "undecided": "{count} libro(s) demasiado enredados para que el verificador decida "
                     "dentro de su presupuesto: su historia no prueba nada",
        "no-answer": "ninguna petición recibió respuesta en el tiempo medido",
        "as-given": "{text}",
        "errors": "fallaron el {share:.1%} de las peticiones (errores, tiempos agotados y "
                  "libros del catálogo no encontrados: {codes}), más del {allowed:.1%} que "
                  "permite --max-errors: un servidor que no responde no da al verificador nada "
                  "que comprobar",
        "no-writes": "no se confirmó ningún préstamo ni devolución: no había actualización que "
                     "perder, así que el veredicto no prueba nada",
        "expected": "se esperaba {code}, llegó {got}{wrong}",
        "expected-wrong-book": " (el libro mostrado no es el correcto)",
        "no-free-book": "el catálogo no tiene ningún libro disponible",
        "loan-without-borrower": "un préstamo sin prestatario recibió {got}",
        "got": "llegó {got}{hang}",
        "got-hang": " (el cliente REQ se quedaría esperando para siempre)",
        "start-failed": "el servidor: {failure}",
        "file-broken": "el archivo no se puede leer: {error}",
        "nothing-acknowledged": "no se confirmó ningún préstamo antes del SIGKILL",
        "crash": "{acked} préstamos confirmados antes del SIGKILL; ausentes del archivo "
                 "después: {lost}; mostrados como no prestados por el servidor rearrancado: "
                 "{shown}",
        "fight-clean": "ninguna anomalía en {requests:,} peticiones ({writes:,} escrituras "
                       "confirmadas)",
        "fight-not-clean": "no limpia",
        "raised": "{kind}: {error}",
        "step-start": "{group}: arrancando {command}",
        "step-protocol": "{group}: comprobación del protocolo",
        "step-fight": "{group}: la pelea de concurrencia",
        "step-speed": "{group}: latencia y rendimiento con {clients} cliente(s)",
        "step-crash": "{group}: SIGKILL y nuevo arranque",
    },
}

KEYS = frozenset(_TEMPLATES["en"]) | {"reasons"}


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else DEFAULT_PAGE_LANG


def _book(facts: Mapping[str, Any]) -> str:
    title, isbn = facts.get("title"), facts.get("isbn", "?")
    return f"«{title}» ({isbn})" if title else str(isbn)


def say(key: str, facts: Mapping[str, Any], lang: str = "en") -> str:
    """The sentence for `key` with `facts`, in `lang`. Raises KeyError for an unknown key and
    for a fact its template needs and `facts` lacks."""
    lang = _lang(lang)
    if key == "reasons":  # several [key, facts] pairs, said one after the other
        return "; ".join(say(k, f, lang) for k, f in facts["reasons"])
    words = _TEMPLATES[lang]
    states, ops = _STATES[lang], _OPS[lang]
    filled: dict[str, Any] = dict(facts)
    filled["book"] = _book(facts)
    for name in ("start", "saw", "state"):
        if name in facts:
            filled[name] = states.get(str(facts[name]), facts[name])
    if "state" in facts:
        filled["other"] = states["available" if facts["state"] == "lent" else "lent"]
    if "op" in facts:
        filled["op"] = ops.get(str(facts["op"]), facts["op"])
    if "invoke_ms" in facts:
        filled["when"] = words["when"].format(**facts)
    if key == "final-state":
        filled["unknown"] = (words["final-state-unknown"].format(unknown=facts["unknown"])
                             if facts.get("unknown") else "")
    elif key == "wrong-book":
        filled["more"] = (words["wrong-book-more"].format(count=facts["count"])
                          if facts.get("count", 1) > 1 else "")
    elif key == "expected":
        filled["wrong"] = "" if facts.get("book_right", True) else words["expected-wrong-book"]
    elif key == "got":
        filled["hang"] = words["got-hang"] if facts.get("hang") else ""
    return words[key].format(**filled)


def said(entry: Mapping[str, Any], lang: str, *, key: str | None = None,
         fallback: str = "detail") -> str:
    """An entry that carries its `facts` (a finding of violations.json, a grading check) in
    `lang`; an entry written before facts were kept (an older run's files) keeps its stored
    English words, `entry[fallback]`."""
    facts = entry.get("facts")
    name = key or entry.get("key") or entry.get("kind")
    if facts and name in KEYS:
        try:
            return say(str(name), facts, lang)
        except (KeyError, IndexError, ValueError):
            pass
    return str(entry.get(fallback, ""))
