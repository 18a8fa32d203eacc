"""Notebook widgets: the class's forms, result cards, a catalog table, and a local server.

Everything a notebook shows is built here so that it is tested like any other code. Server
values are escaped before they become HTML. Requests run on a background thread, so a slow or
absent server never blocks the kernel; each form shows "waiting…" and then the reply, or a
plain message once the client's timeout and retries are used up.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from libsrv.cards import catalog_table, reply_card, unreachable_message
from libsrv.client import BadReply, LibraryClient, Reply, ServerUnreachable
from libsrv.config import DEFAULT_WORKERS, ENDPOINT_VARIABLE, LANG_VARIABLE
from libsrv.defaults import DEFAULT_ENGINE, DEFAULT_PAGE_LANG
from libsrv.live import Change, FeedUnavailable, LiveCatalog
from libsrv.messages import LANGUAGES, word
from libsrv.process import ServerProcess
from libsrv.protocol import Action
from libsrv.scratch import owned_temp_dir, sweep_orphans
from libsrv.security import CurveKeys
from libsrv.shipped import SHIPPED_NAME, copy_shipped_catalog

COPY_PREFIX = "libsrv-notebook-"
LIVE_MAX_BOOKS = 5000  # the catalog tab follows the feed up to this size (it lists every book)
REDRAW_SECONDS = 0.25  # a burst of changes redraws the table at most this often


def sweep_stale_copies(folder: Path | str | None = None) -> list[Path]:
    """Delete catalog copies whose owner process is gone (a kernel killed before it could
    stop its server); returns the folders removed."""
    return sweep_orphans(COPY_PREFIX, folder)


class LocalServer:
    """A server started from a notebook, in the background, on a copy of a catalog.

    It stops when `stop()` is called, when the kernel exits normally, and also when the kernel
    is killed (the server exits when the pipe to its parent closes).
    """

    def __init__(self, db: Path | str | None = None, *, workers: int = DEFAULT_WORKERS,
                 storage: str = DEFAULT_ENGINE, port: int = 0, copy: bool = True,
                 options: Mapping[str, Any] | None = None, lang: str | None = None) -> None:
        """`db` defaults to the shipped catalog; `lang` ("es", "en") is the language of every
        reply (default: Spanish to the class's Spanish action names, else English); `options`
        are further `ServerConfig` fields."""
        if lang is not None:
            options = {**(options or {}), "lang": lang}
        if copy or db is None:
            sweep_stale_copies()
            self._tmp = owned_temp_dir(COPY_PREFIX)
            if db is None:
                self.db = copy_shipped_catalog(self._tmp / SHIPPED_NAME)
            else:
                self.db = self._tmp / Path(db).name
                shutil.copy(db, self.db)
        else:
            self._tmp = None
            self.db = Path(db)
        self._process = ServerProcess(self.db, workers=workers, storage=storage, port=port,
                                      options=options, exit_with_parent=True)
        self._process.start()
        self.endpoint = self._process.endpoint
        self.workers, self.storage = workers, storage
        atexit.register(self.stop)

    @property
    def running(self) -> bool:
        return self._process.alive()

    def stop(self) -> None:
        """Stop the server cleanly. A catalog given with ``copy=False`` is then complete and
        current; a copy made here is deleted with its folder."""
        self._process.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"LocalServer({self.endpoint}, {self.workers} workers, {self.storage}, "
                f"{state}, catalog {self.db})")


class _Throttled:
    """Calls `draw` once, REDRAW_SECONDS after the first `poke` of a burst, on a timer thread:
    a burst of changes redraws a widget once, not once per change."""

    def __init__(self, draw: Callable[[], None]) -> None:
        self._draw = draw
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(REDRAW_SECONDS, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self._draw()


# the forms' tabs, in the order LibraryForms builds them (the catalog's tab comes after)
FORM_TABS = ("tab_query_isbn", "tab_query_title", "tab_loan_isbn", "tab_loan_title",
             "tab_return")


class _Form:
    """One form: text fields, a button, and the reply shown under it."""

    def __init__(self, owner: LibraryForms, title: str, fields: tuple[str, ...],
                 call: Callable[[LibraryClient, dict[str, str]], Reply]) -> None:
        lang = owner.lang
        self.fields = {name: widgets.Text(description=word(f"field_{name}", lang),
                                          placeholder=word(f"field_{name}", lang),
                                          layout=widgets.Layout(width="32em"))
                       for name in fields}
        self.button = widgets.Button(description=word(title, lang), button_style="primary")
        self.result = widgets.HTML()
        self.box = widgets.VBox([*self.fields.values(), self.button, self.result])
        self._owner, self._call = owner, call
        self.button.on_click(lambda _: self.submit())

    def submit(self) -> Future[None]:
        values = {name: box.value for name, box in self.fields.items()}
        self.button.disabled = True
        self.result.value = f"<i>{word('waiting', self._owner.lang)}</i>"
        return self._owner.run(lambda client: self._call(client, values), self._show)

    def _show(self, outcome: Reply | Exception) -> None:
        lang = self._owner.lang
        if isinstance(outcome, Reply):
            self.result.value = reply_card(outcome, lang)
        else:
            self.result.value = unreachable_message(self._owner.endpoint.value, outcome, lang)
        self.button.disabled = False
        self._owner.publish()


class LibraryForms:
    """The class's page as widgets: five forms, a catalog table and the server endpoint.

    ``LibraryForms("tcp://127.0.0.1:5555")`` in a notebook cell shows it. Each form's
    `fields`, `button` and `result` are attributes (`forms.loan_isbn.fields["isbn"]`, ...),
    which is also how the tests drive it. With `live` (the default) the catalog tab follows
    the server's feed: loans and returns made anywhere show up without a click. `lang` ("es",
    the class's language, or "en") is the language of the tabs, buttons, fields and labels;
    the reply messages are the server's (`serve --lang`).

    With `exportable` (the default), the output a notebook keeps also holds a static copy of
    the forms' last results (`static_html`), brought up to date after each one: a notebook
    exported to HTML or printed without its widgets' state (JupyterLab does not save it unless
    asked) still shows what the student did.
    """

    def __init__(self, endpoint: str, *, timeout: float = 2.0, retries: int = 1,
                 curve: CurveKeys | None = None, show_endpoint: bool = True,
                 live: bool = True, lang: str = DEFAULT_PAGE_LANG,
                 exportable: bool = True) -> None:
        """`show_endpoint=False` hides the server box (the forms page: students do not
        choose the server)."""
        self.exportable = exportable
        self._display: Any = None  # the DisplayHandle of the output that shows the forms
        self.timeout, self.retries, self.curve = timeout, retries, curve
        self.lang = lang if lang in LANGUAGES else DEFAULT_PAGE_LANG
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="libsrv-ui")
        lang = self.lang
        self.endpoint = widgets.Text(value=endpoint, description=word("server", lang),
                                     layout=widgets.Layout(width="32em"))
        self.query_isbn = _Form(self, "button_query", ("isbn",),
                                lambda c, v: c.query_isbn(v["isbn"]))
        self.query_title = _Form(self, "button_search", ("title",),
                                 lambda c, v: c.query_title(v["title"]))
        self.loan_isbn = _Form(self, "button_loan", ("isbn", "borrower"),
                               lambda c, v: c.loan_isbn(v["isbn"], v["borrower"]))
        self.loan_title = _Form(self, "button_loan", ("title", "borrower"),
                                lambda c, v: c.loan_title(v["title"], v["borrower"]))
        self.return_isbn = _Form(self, "button_return", ("isbn",),
                                 lambda c, v: c.return_isbn(v["isbn"]))
        self.catalog_filter = widgets.Text(description=word("filter", lang),
                                           placeholder=word("filter_hint", lang))
        self.catalog_button = widgets.Button(description=word("refresh", lang), icon="refresh")
        self.catalog = widgets.HTML()
        self.live_status = widgets.HTML()
        self._books: list[dict[str, Any]] = []
        self._live: LiveCatalog | None = None
        self._redraw = _Throttled(self._redraw_live)
        self.catalog_button.on_click(lambda _: self.refresh())
        self.catalog_filter.observe(lambda _: self._draw_catalog(), names="value")
        forms = [self.query_isbn, self.query_title, self.loan_isbn, self.loan_title,
                 self.return_isbn]
        self._forms = forms
        self.tabs = widgets.Tab(children=[
            *(f.box for f in forms),
            widgets.VBox([widgets.HBox([self.catalog_filter, self.catalog_button,
                                        self.live_status]), self.catalog])])
        for index, title in enumerate((*FORM_TABS, "tab_catalog")):
            self.tabs.set_title(index, word(title, lang))
        self.widget = widgets.VBox([self.endpoint, self.tabs] if show_endpoint else [self.tabs])
        if live:
            self.follow()

    def run(self, call: Callable[[LibraryClient], Any],
            show: Callable[[Any], None]) -> Future[None]:
        """Run `call` with a fresh client on a background thread, then `show` its result
        (or the exception that stopped it)."""
        endpoint = self.endpoint.value.strip()

        def work() -> None:
            try:
                with LibraryClient(endpoint, timeout=self.timeout, retries=self.retries,
                                   curve=self.curve) as client:
                    outcome = call(client)
            except (ServerUnreachable, BadReply, ValueError, OSError) as error:
                outcome = error
            show(outcome)

        return self._pool.submit(work)

    def refresh(self) -> Future[None]:
        """Fetch the whole catalog (up to 5,000 books) and redraw the table."""
        self.catalog.value = f"<i>{word('loading', self.lang)}</i>"

        def fetch(client: LibraryClient) -> list[dict[str, Any]]:
            books: list[dict[str, Any]] = []
            while len(books) < 5000:
                page = client.catalog(offset=len(books), limit=1000)
                books += page.books
                if len(page.books) < 1000:
                    break
            return books

        def show(outcome: list[dict[str, Any]] | Exception) -> None:
            if isinstance(outcome, Exception):
                self.catalog.value = unreachable_message(self.endpoint.value, outcome,
                                                         self.lang)
            else:
                self._books = outcome
                self._draw_catalog()

        return self.run(fetch, show)

    def follow(self) -> Future[None]:
        """Keep the catalog tab current from the server's live feed (started on a background
        thread; the status next to the filter says whether it is live, and why not)."""
        endpoint = self.endpoint.value.strip()
        lang = self.lang
        self.live_status.value = f"<i>{word('connecting', lang)}</i>"

        def start() -> None:
            if self._live is not None:
                self._live.stop()
                self._live = None
            try:
                with LibraryClient(endpoint, timeout=self.timeout, retries=self.retries,
                                   curve=self.curve) as client:
                    total = client.snapshot(limit=1).raw.get("total", 0)
                if isinstance(total, int) and total > LIVE_MAX_BOOKS:
                    self.live_status.value = f"<i>{word('not_live_big', lang, total=total)}</i>"
                    return
                self._live = LiveCatalog(endpoint, timeout=self.timeout, retries=self.retries,
                                         curve=self.curve, on_change=lambda _: self._changed(),
                                         on_resync=lambda _: self._changed())
            except FeedUnavailable:
                self.live_status.value = f"<i>{word('not_live_no_feed', lang)}</i>"
                return
            except (ServerUnreachable, BadReply, TimeoutError, ValueError, OSError):
                self.live_status.value = f"<i>{word('not_live_silent', lang)}</i>"
                return
            self._changed()

        return self._pool.submit(start)

    def _changed(self) -> None:
        """A change came: redraw soon, once for a whole burst."""
        self._redraw.poke()

    def _redraw_live(self) -> None:
        live = self._live
        if live is None:
            return
        self._books = live.books()
        self.live_status.value = (f"<span style='color:#1e8449'>● {word('live', self.lang)}"
                                  f"</span> · {word('change', self.lang)} #{live.seq}")
        self._draw_catalog()

    def close(self) -> None:
        """Stop following the feed."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _draw_catalog(self) -> None:
        self.catalog.value = catalog_table(self._books, self.catalog_filter.value, self.lang)

    def static_html(self) -> str:
        """The forms' last results as plain HTML (no widgets): each form that has one, under
        its tab's title, after the server's endpoint. Every value shown is escaped."""
        lang = self.lang
        parts = [f"<p><b>{html.escape(word('server', lang))}</b> "
                 f"{html.escape(self.endpoint.value)}</p>"]
        for form, title in zip(self._forms, FORM_TABS, strict=True):
            if form.result.value and not form.button.disabled:  # answered, not waiting
                asked = ", ".join(f"{html.escape(word(f'field_{name}', lang))}: "
                                  f"{html.escape(box.value)}"
                                  for name, box in form.fields.items())
                parts.append(f"<h4>{html.escape(word(title, lang))}</h4><p>{asked}</p>"
                             f"{form.result.value}")
        return "<div class='libsrv-forms'>" + "\n".join(parts) + "</div>"

    def _bundle(self) -> dict[str, Any]:
        """The widget's own output, plus `static_html` for whatever cannot show widgets."""
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/html"] = self.static_html()
        return bundle

    def publish(self) -> None:
        """Bring the output that shows the forms up to date with their last results (the
        widget is drawn again from its state; the static copy changes)."""
        if self._display is not None:
            self._display.update(self._bundle(), raw=True)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.exportable:
            self._display = display(self._bundle(), raw=True, display_id=True)
        else:
            display(self.widget)




class LiveCounter:
    """A live count of the loans and returns the server publishes, for watching a benchmark
    happen: ``LiveCounter(endpoint)`` in a cell shows it; it counts from when it started and
    redraws at most every REDRAW_SECONDS. `loans`, `returns` and `seq` are its numbers; `lang`
    ("en", or "es", the class's language) is the language of what it shows."""

    def __init__(self, endpoint: str, lang: str = "en") -> None:
        self.loans = self.returns = self.others = 0
        self.lang = lang if lang in LANGUAGES else "en"
        self.widget = widgets.HTML(f"<i>{word('connecting', self.lang)}</i>")
        self._redraw = _Throttled(self._draw)
        self._live = LiveCatalog(endpoint, on_change=self._count)
        self._started_at = self._live.seq
        self._draw()

    @property
    def seq(self) -> int:
        return self._live.seq

    def _count(self, change: Change) -> None:
        if change.action in (Action.LOAN_ISBN, Action.LOAN_TITLE):
            self.loans += 1
        elif change.action == Action.RETURN_ISBN:
            self.returns += 1
        else:
            self.others += 1
        self._redraw.poke()

    def _draw(self) -> None:
        live = self._live
        counts = word("counter", self.lang, loans=self.loans, returns=self.returns)
        seq = word("counter_seq", self.lang, seq=live.seq, resyncs=live.resyncs - 1)
        self.widget.value = (f"<div style='font-size:1.4em'>{counts}</div>"
                             f"<div style='color:#555'>{seq}</div>")

    def summary(self) -> str:
        self._draw()
        return word("counter_summary", self.lang, loans=self.loans, returns=self.returns,
                    first=self._started_at + 1, last=self.seq)

    def close(self, timeout: float = 10.0) -> None:
        """Count what the server published up to now, then stop following it."""
        with contextlib.suppress(ServerUnreachable, BadReply):
            with LibraryClient(self._live.endpoint, timeout=timeout) as client:
                latest = client.snapshot(limit=1).raw.get("seq")
            if isinstance(latest, int):
                self._live.wait_for(latest, timeout)
        self._live.stop()
        self._draw()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

def forms_page() -> LibraryForms:
    """What the forms page shows (``python -m libsrv forms`` serves it): the forms for the
    server named by the LIBSRV_ENDPOINT environment variable, in the language LIBSRV_LANG names
    (default Spanish), without the server box, with the catalog tab already loaded."""
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        raise RuntimeError(f"the forms page needs {ENDPOINT_VARIABLE}; start it with "
                           "`python -m libsrv forms`")
    from IPython.display import HTML, display

    lang = os.environ.get(LANG_VARIABLE) or DEFAULT_PAGE_LANG
    forms = LibraryForms(endpoint, show_endpoint=False, lang=lang, exportable=False)
    display(HTML(f"<h1>{html.escape(word('page_title', forms.lang))}</h1>"
                 f"<p>{html.escape(word('page_hint', forms.lang))}</p>"))
    forms.refresh()
    return forms
