"""The verifier's picture of a finding: what each client did to one book, over time.

A finding in words ("client 9 was told its return succeeded, but nobody had the book then")
is easier to believe with the history in front of you, the way Porcupine draws one: one row per
client, each operation a bar from when it was sent to when it was answered, the operation that
no order explains in red, and under them the states the verifier allowed the book to be in at
each moment (one, or either while a write in flight may or may not have happened), with the
reply that contradicts them marked. `finding_figure(detail)` takes one entry of a run's
``violations.json`` ``details``.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

# colour by what the operation was; the status is written on the bar
COLOURS = {"loan": "#0072B2", "return": "#009E73", "query": "#999999"}
BROKEN = "#D62728"


def _broken(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The operation the finding is about: the acknowledged one answered when it became
    certain (the last such one, if several)."""
    at = detail.get("at_ms")
    candidates = [op for op in detail.get("ops", []) if op["status"] == "ok" and
                  op["complete_ms"] is not None and at is not None and
                  abs(op["complete_ms"] - at) < 1e-6]
    return candidates[-1] if candidates else None


# every word the picture draws, in English and in the class's Spanish
WORDS = {
    "en": {"loan": "loan", "return": "return", "query": "query", "saw": "saw {state}",
           "lent": "lent", "available": "available", "refused": "refused",
           "unknown": "unknown", "broken": "no order explains this reply",
           "client": "client {n}", "book": "book", "implied": "what the reply implies",
           "x": "ms from the start of the run (bars: sent to answered)",
           "allowed": "what the verifier allowed the book to be: one state, or either (shaded) "
                      "while a write in flight may or may not have happened",
           "replayed": "the book if the acknowledged loans and returns happened in the order "
                       "of their replies",
           "title": "{kind} on {book}"},
    "es": {"loan": "préstamo", "return": "devolución", "query": "consulta",
           "saw": "vio {state}", "lent": "prestado", "available": "disponible",
           "refused": "rechazada", "unknown": "desconocida",
           "refused loan": "rechazado", "unknown loan": "desconocido",  # el préstamo
           "broken": "ningún orden explica esta respuesta", "client": "cliente {n}",
           "book": "libro", "implied": "lo que implica la respuesta",
           "x": "ms desde el inicio de la ejecución (barras: de enviada a respondida)",
           "allowed": "lo que el verificador admite para el libro: un estado, o cualquiera "
                      "(sombreado) mientras una escritura en curso pudo haber ocurrido o no",
           "replayed": "el libro si los préstamos y devoluciones confirmados ocurrieron en el "
                       "orden de sus respuestas",
           "title": "{kind} en {book}"},
}


def _label(op: dict[str, Any], words: dict[str, str]) -> str:
    what = words.get(op["op"], op["op"]) + (f" ({op['borrower']})" if op.get("borrower") else "")
    if op["status"] == "ok":
        told = "OK" if op["op"] != "query" else \
            words["saw"].format(state=words.get(op["saw"], op["saw"]))
    else:
        told = words.get(f"{op['status']} {op['op']}", words.get(op["status"], op["status"]))
    return f"{what}: {told}"


def replayed_states(ops: list[dict[str, Any]], start: int | None
                    ) -> list[tuple[float, int]]:
    """(time ms, 1 lent / 0 available) after each acknowledged write, replayed in the order of
    the replies, from `start` (None: unknown, taken as what the first write implies)."""
    writes = sorted((op for op in ops if op["op"] in ("loan", "return") and
                     op["status"] == "ok" and op["complete_ms"] is not None),
                    key=lambda op: op["complete_ms"])
    if start is None:
        start = 0 if not writes or writes[0]["op"] == "loan" else 1
    first = min((op["invoke_ms"] for op in ops), default=0.0)
    states = [(first, start)]
    for op in writes:
        states.append((op["complete_ms"], 1 if op["op"] == "loan" else 0))
    return states


def _kind_name(kind: str, lang: str) -> str:
    """A finding's kind in a title: as the verifier names it, or the class's short Spanish
    name (the part of `lessons.FINDING_NAMES` before its explanation)."""
    if lang != "es":
        return kind
    from libsrv_bench.lessons import FINDING_NAMES

    return FINDING_NAMES.get(kind, {}).get("es", kind).split(" (")[0]


def _implied(op: dict[str, Any]) -> int:
    """The state (1 lent) a reply says the book was in: a loan done or a return refused says
    available, a loan refused or a return done says lent, a query what it saw."""
    if op["op"] == "query":
        return int(op.get("saw") == "lent")
    return int((op["op"] == "loan") != (op["status"] == "ok"))


def _draw_allowed(axes: plt.Axes, allowed: list[list[Any]], last: float) -> None:
    """The verifier's allowed states as steps: a line at the one state, a shaded band where
    both were possible."""
    ends = [at for at, _ in allowed[1:]] + [last]
    for (at, names), end in zip(allowed, ends, strict=True):
        if len(names) > 1:
            axes.fill_between([at, end], 0, 1, color="0.75", alpha=0.6, linewidth=0)
        else:
            level = 1 if names[0] == "lent" else 0
            axes.plot([at, end], [level, level], color="0.2", linewidth=2)


def finding_figure(detail: dict[str, Any], start: int | None = None,
                   lang: str = "en") -> plt.Figure:
    """The finding `detail` (an entry of violations.json) as a history picture, its words in
    `lang` ("en" or "es"; the finding's kind as given, the caller may name it)."""
    words = WORDS["es" if lang == "es" else "en"]
    ops = [op for op in detail.get("ops", []) if op.get("invoke_ms") is not None]
    clients = sorted({op["client"] for op in ops})
    rows = {client: n for n, client in enumerate(clients)}
    broken = _broken(detail)
    fig, (bars, state) = plt.subplots(2, 1, figsize=(9, 1.6 + 0.45 * len(clients) + 1.2),
                                      sharex=True,
                                      height_ratios=[max(1, len(clients)), 1.3])
    last = max((op["complete_ms"] or op["invoke_ms"] for op in ops), default=1.0)
    for op in ops:
        end = op["complete_ms"] if op["complete_ms"] is not None else last
        colour = BROKEN if op is broken else COLOURS.get(op["op"], "#999999")
        y = rows[op["client"]]
        bars.barh(y, end - op["invoke_ms"], left=op["invoke_ms"], height=0.55,
                  color=colour, alpha=0.9 if op["status"] == "ok" else 0.45,
                  hatch="//" if op["status"] == "unknown" else None,
                  edgecolor="black" if op is broken else "none")
        bars.annotate(_label(op, words), (op["invoke_ms"], y - 0.32), fontsize=7.5,
                      color=BROKEN if op is broken else "0.15",
                      fontweight="bold" if op is broken else "normal")
    bars.set_yticks(range(len(clients)), [words["client"].format(n=c) for c in clients])
    bars.set_ylim(-0.75, len(clients) - 0.4)
    bars.invert_yaxis()
    bars.grid(axis="x", alpha=0.3)
    bars.legend(handles=[*(Patch(color=COLOURS[kind], label=words[kind])
                           for kind in ("loan", "return", "query")),
                         Patch(color=BROKEN, label=words["broken"])],
                fontsize=7.5, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4,
                frameon=False)
    allowed = detail.get("states") or []
    if allowed:
        _draw_allowed(state, allowed, last)
        title = words["allowed"]
    else:  # a finding from before the verifier noted it: the replies' order instead
        states = replayed_states(ops, start)
        xs = [t for t, _ in states] + [last]
        ys = [s for _, s in states] + [states[-1][1]]
        state.step(xs, ys, where="post", color="0.2")
        title = words["replayed"]
    if broken is not None:  # the state the reply implies, which no allowed state explains
        state.plot([broken["complete_ms"]], [_implied(broken)], "X", color=BROKEN,
                   markersize=9)
        state.annotate(words["implied"], (broken["complete_ms"], _implied(broken)),
                       xytext=(-7, -3), textcoords="offset points", fontsize=7.5,
                       color=BROKEN, ha="right")
    state.set_yticks([0, 1], [words["available"], words["lent"]])
    state.set_ylim(-0.3, 1.3)
    state.set_ylabel(words["book"], fontsize=8)
    state.set_xlabel(words["x"])
    state.set_title(title, fontsize=8)
    state.grid(axis="x", alpha=0.3)
    fig.suptitle(words["title"].format(kind=_kind_name(detail["kind"], lang),
                                       book=detail["book"]), fontsize=10)
    fig.tight_layout()
    return fig
