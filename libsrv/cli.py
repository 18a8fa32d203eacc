"""Command line: ``python -m libsrv serve | watch | call | generate | demo | keys | forms``.

A thin shell over the library: it parses flags, sets up logging, and turns library errors into
one clear line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

from libsrv import __version__
from libsrv.catalog import CatalogError
from libsrv.client import DEFAULT_RETRIES, DEFAULT_TIMEOUT, LibraryClient, ServerUnreachable
from libsrv.config import (
    DEFAULT_DB,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_WORKERS,
    ConfigError,
    ServerConfig,
    client_endpoint,
    read_config_file,
    server_settings,
)
from libsrv.defaults import (
    BOOKS_PER_TIMEOUT_SECOND,
    DATA_PATH_NAMES,
    DATA_PATH_VARIABLE,
    DEDUP_SECONDS,
    DEDUP_WINDOW,
    DEFAULT_DATA_PATH,
    DEFAULT_ENGINE,
    DEFAULT_LOAN_DAYS,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_PAGE_LANG,
    DEFAULT_TITLE_LOAN_DAYS,
    DEFAULT_TRANSPORT,
    DEFAULT_WORKER_TIMEOUT,
    ENGINE_NAMES,
    TRANSPORT_NAMES,
)
from libsrv.feed import FeedError
from libsrv.forms_page import CULL_AFTER, MAX_KERNELS
from libsrv.messages import LANGUAGES
from libsrv.program import (
    configure_logging,
    logged_worker_entry,
    report_stop,
    stop_when_stdin_closes,
)
from libsrv.protocol import REQUIRED_FIELDS, Action, resolve_action
from libsrv.server import StopFlag
from libsrv.storage import StorageError

log = logging.getLogger("libsrv")



# ---------------------------------------------------------------- serve


def _server_config(args: argparse.Namespace) -> ServerConfig:
    """The flags (over the --config file's 'server' section) as a ServerConfig, which checks
    them."""
    settings: dict[str, Any] = {}
    if args.config:
        settings.update(server_settings(read_config_file(args.config)))
    flags = {"host": args.host, "port": args.port, "workers": args.workers, "db": args.db,
             "storage": args.storage, "loan_days": args.loan_days, "lang": args.lang,
             "title_loan_days": args.title_loan_days, "transport": args.transport}
    settings.update({k: v for k, v in flags.items() if v is not None})  # flags win
    if "port" in settings:
        try:
            settings["port"] = int(settings["port"])
        except (TypeError, ValueError):
            raise ConfigError(f"port must be a number, not {settings['port']!r}") from None
    return ServerConfig(**settings, lock_timeout=args.lock_timeout,
                        locking=not args.unsafe_no_lock, fsync=args.fsync, quiet=args.quiet,
                        curve=args.curve, remember_seconds=args.remember_seconds,
                        worker_timeout=args.worker_timeout, publish=not args.no_pub,
                        pub_port=args.pub_port, data_path=args.data_path)


def cmd_serve(args: argparse.Namespace) -> int:
    from libsrv.serving import serve

    config = _server_config(args)
    configure_logging(config.quiet)
    stop = StopFlag().install()
    if args.exit_with_parent:
        stop_when_stdin_closes(stop)
    current = serve(config, stop=stop, worker_entry=logged_worker_entry,
                    on_ready=lambda line: print(f"{line}. Ctrl-C stops it.", flush=True))
    return report_stop(config, current)


# ---------------------------------------------------------------- call

# The actions as `call` names them (query-isbn), each with the fields it needs, from one table:
# protocol.REQUIRED_FIELDS. Short aliases are accepted too, and the class's Spanish names.
_CALLS: dict[str, Action] = {action.value.replace("_", "-"): action for action in Action}
_CALL_ALIASES = {"query": Action.QUERY_ISBN, "loan": Action.LOAN_ISBN,
                 "return": Action.RETURN_ISBN, "title": Action.QUERY_TITLE}


def _call_action(name: str) -> Action:
    """An action as typed: query-isbn, query_isbn, QUERY-ISBN, `return` for return-isbn, or
    the class's Spanish names ("Prestamo por ISBN", prestamo-por-isbn)."""
    spelled = name.strip().lower().replace("_", "-")
    found = _CALLS.get(spelled) or _CALL_ALIASES.get(spelled)
    if found is None:
        resolved = resolve_action(spelled.replace("-", " ")) or resolve_action(name)
        found = resolved[0] if resolved else None
    if found is None:
        raise argparse.ArgumentTypeError(
            f"unknown action {name!r}; use one of {', '.join(_CALLS)} (or return, loan, query, "
            "title, or the class's Spanish names such as \"Prestamo por ISBN\")")
    return found


def cmd_call(args: argparse.Namespace) -> int:
    action = args.action
    names = REQUIRED_FIELDS[action]
    if len(args.values) != len(names):
        shown = action.value.replace("_", "-")
        raise ConfigError(f"{shown} takes {len(names)} value(s): {' '.join(names) or '-'}")
    endpoint = args.endpoint or (client_endpoint(read_config_file(args.config))
                                 if args.config else f"tcp://{DEFAULT_HOST}:{DEFAULT_PORT}")
    curve = None
    if args.server_key or args.client_key:
        from libsrv.security import CurveKeys

        if not (args.server_key and args.client_key):
            raise ConfigError("CurveZMQ needs both --server-key and --client-key")
        curve = CurveKeys.from_files(args.server_key, args.client_key)
    with LibraryClient(endpoint, timeout=args.timeout, retries=args.retries,
                       curve=curve) as client:
        reply = client.request(action, **dict(zip(names, args.values, strict=True)))
    print(json.dumps(reply.raw, ensure_ascii=False, indent=2))
    return 0 if reply.success else 1


def cmd_watch(args: argparse.Namespace) -> int:
    from libsrv.live import FeedUnavailable
    from libsrv.watch import watch

    try:
        watch(args.endpoint, isbn=args.isbn, count=args.count,
              show=lambda line: print(line, flush=True))
    except FeedUnavailable as error:
        raise ConfigError(str(error)) from None
    return 0


# ---------------------------------------------------------------- generate


def cmd_generate(args: argparse.Namespace) -> int:
    from libsrv.generate import write_catalog

    path = write_catalog(args.out, args.books, seed=args.seed)
    print(f"wrote {args.books} books to {path}")
    return 0


# ---------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m libsrv",
                                     description="A ZeroMQ library-catalog service.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the catalog server")
    serve.add_argument("--host", help=f"address to bind (default {DEFAULT_HOST}; 0.0.0.0 opens "
                       "the server to the network)")
    serve.add_argument("--port", metavar="N",
                       type=int, help=f"TCP port (default {DEFAULT_PORT}; 0 picks a "
                       "free one)")
    serve.add_argument("--workers", metavar="N",
                       type=int, help=f"worker processes behind a broker (default "
                       f"{DEFAULT_WORKERS}); 0 is a single REP socket")
    serve.add_argument("--db", metavar="PATH",
                       help=f"catalog file (default {DEFAULT_DB}, created from the "
                       "catalog shipped with libsrv at first start)")
    serve.add_argument("--transport", choices=TRANSPORT_NAMES,
                       help=f"what clients speak (default {DEFAULT_TRANSPORT}: ZeroMQ REQ/REP, "
                       "the class's protocol); grpc and http serve the same catalog for "
                       "comparing transports (the transports extra, docs/transports.md)")
    serve.add_argument("--storage", choices=sorted(ENGINE_NAMES),
                       help=f"storage engine (default {DEFAULT_ENGINE})")
    serve.add_argument("--loan-days", metavar="DAYS", type=int,
                       help=f"loan period of a loan by ISBN (default {DEFAULT_LOAN_DAYS}, as "
                       "in the class's code)")
    serve.add_argument("--title-loan-days", metavar="DAYS", type=int,
                       help="loan period of a loan by title (default "
                       f"{DEFAULT_TITLE_LOAN_DAYS}, as in the class's code)")
    serve.add_argument("--lang", choices=LANGUAGES,
                       help="language of every reply message (default: Spanish to requests "
                       "that use the class's Spanish action names, English to the others)")
    serve.add_argument("--config", metavar="FILE",
                       help="a class-style config.json whose 'server' section sets "
                       "host, port, workers, db, storage, loan_days, title_loan_days and lang; "
                       "flags override it (default: none)")
    serve.add_argument("--lock-timeout", metavar="SECONDS",
                       type=float, default=DEFAULT_LOCK_TIMEOUT,
                       help="seconds to wait for the catalog lock before failing a write "
                       f"(default {DEFAULT_LOCK_TIMEOUT:g})")
    serve.add_argument("--remember-seconds", metavar="SECONDS", type=float, default=DEDUP_SECONDS,
                       help="remember every write's id (and reply) at least this long, so a "
                       "client's retry is answered, not applied again; about 0.5 KB per write "
                       f"per process (default {DEDUP_SECONDS:g}, and never fewer than the last "
                       f"{DEDUP_WINDOW:,} writes)")
    serve.add_argument("--worker-timeout", metavar="SECONDS", type=float, default=None,
                       help="kill and replace a worker busy this long on one request "
                       f"(default {DEFAULT_WORKER_TIMEOUT:g} s, more for catalogs over "
                       f"{DEFAULT_WORKER_TIMEOUT * BOOKS_PER_TIMEOUT_SECOND:,.0f} books)")
    serve.add_argument("--data-path", choices=DATA_PATH_NAMES, default=DEFAULT_DATA_PATH,
                       help="the broker's data path: compiled (C, built with this machine's "
                       "compiler on first use, docs/broker.md) or python; auto takes the "
                       f"compiled one when it can be built (default {DEFAULT_DATA_PATH}; "
                       f"${DATA_PATH_VARIABLE} overrides auto)")
    serve.add_argument("--curve", metavar="KEYDIR", default=None,
                       help="encrypt with CurveZMQ and admit only clients whose public keys "
                       "are in KEYDIR/authorized (see `python -m libsrv keys`; default: "
                       "plain TCP, no encryption)")
    serve.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=None,
                       help="fsync every write (json: on by default; journal: off by default)")
    serve.add_argument("--unsafe-no-lock", action="store_true",
                       help="TEACHING ONLY: turn the file lock off to watch lost updates happen")
    serve.add_argument("--quiet", action="store_true", help="do not log every request")
    serve.add_argument("--pub-port", metavar="N", type=int,
                       help="publish every change on this port (PUB-SUB, see `python -m "
                       "libsrv watch`); 0 picks a free one (default: the request port + 1, or a "
                       "free one with --port 0)")
    serve.add_argument("--no-pub", action="store_true",
                       help="publish nothing (no live feed)")
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="stop when standard input closes (used when a notebook starts the "
                       "server, so it never outlives the kernel)")
    serve.set_defaults(func=cmd_serve)

    watch = sub.add_parser("watch", help="print every change as the server publishes it")
    watch.add_argument("--endpoint", default=f"tcp://{DEFAULT_HOST}:{DEFAULT_PORT}",
                       help=f"the server's request endpoint; the feed's port is asked from it "
                       f"(default tcp://{DEFAULT_HOST}:{DEFAULT_PORT})")
    watch.add_argument("--isbn", help="show only this book's changes (default: every book)")
    watch.add_argument("--count", type=int,
                       help="stop after this many changes (default: until Ctrl-C)")
    watch.set_defaults(func=cmd_watch)

    call = sub.add_parser("call", help="send one request and print the reply")
    call.add_argument("action", type=_call_action, metavar="action",
                      help=f"what to ask: {', '.join(_CALLS)}; query_isbn works too, and "
                      "return, loan, query, title, and the class's Spanish names "
                      "(\"Prestamo por ISBN\")")
    call.add_argument("values", nargs="*", help="isbn / title / borrower, as the action needs")
    call.add_argument("--endpoint", help=f"server endpoint (default tcp://{DEFAULT_HOST}:"
                      f"{DEFAULT_PORT}, or the --config file's)")
    call.add_argument("--config", help="a class-style config.json whose 'client' section "
                      "names the server (default: none)")
    call.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                      help=f"seconds to wait for each reply (default {DEFAULT_TIMEOUT:g})")
    call.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                      help="send again this many times, on a new socket, when no reply comes "
                      f"(default {DEFAULT_RETRIES})")
    call.add_argument("--server-key", help="the server's public key file, for a server "
                      "started with --curve (default: plain TCP)")
    call.add_argument("--client-key", help="this client's .key_secret file, for a server "
                      "started with --curve (default: plain TCP)")
    call.set_defaults(func=cmd_call)

    gen = sub.add_parser("generate", help="write a synthetic catalog of any size")
    gen.add_argument("--books", type=int, required=True, help="how many books")
    gen.add_argument("--out", required=True, help="the catalog file to write")
    gen.add_argument("--seed", type=int, default=1,
                     help="the same seed writes the same catalog (default 1)")
    gen.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="start a server on a copy of the catalog, run every "
                          "operation against it, print the replies, stop it")
    demo.add_argument("--db", default=None,
                      help="catalog to copy; the file itself is not changed (default: the "
                      "catalog shipped with libsrv)")
    demo.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                      help=f"worker processes; 0 is a single REP socket (default "
                      f"{DEFAULT_WORKERS})")
    demo.add_argument("--storage", choices=sorted(ENGINE_NAMES), default=DEFAULT_ENGINE,
                      help=f"storage engine (default {DEFAULT_ENGINE})")
    demo.set_defaults(func=_cmd_demo)

    keys = sub.add_parser("keys", help="CurveZMQ key pairs for the server and its clients")
    keys.add_argument("--dir", default="keys", help="folder for the keys (default keys)")
    keys.add_argument("--client", action="append", default=[],
                      help="a client name; repeat for more clients (default: none, only the "
                      "server's keys)")
    keys.set_defaults(func=cmd_keys)

    forms = sub.add_parser("forms", help="the forms page (Voila), the class's web page as "
                           "widgets")
    forms.add_argument("--endpoint", help="an existing server; default: start one")
    forms.add_argument("--db", help="catalog for the server started here (served in place); "
                       "default: a copy of the shipped catalog")
    forms.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                       help=f"workers of the server started here (default {DEFAULT_WORKERS})")
    forms.add_argument("--host", default=DEFAULT_HOST,
                       help="address of the page; 0.0.0.0 opens it to the LAN (default "
                       "127.0.0.1)")
    forms.add_argument("--port", type=int, default=8866, help="the page's port (default 8866)")
    forms.add_argument("--max-kernels", type=int, default=MAX_KERNELS,
                       help="visitors at once, each with a kernel of about 55 MB; more get "
                       f"'try again later' (default {MAX_KERNELS})")
    forms.add_argument("--token", default=None,
                       help="a token visitors must give (?token=...); '' for none (default: "
                       "none on 127.0.0.1, a new one printed at start otherwise)")
    forms.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_PAGE_LANG,
                       help="the page's language, and its server's replies: es, the class's, "
                       f"or en (default {DEFAULT_PAGE_LANG})")
    forms.add_argument("--cull-after", type=float, default=CULL_AFTER,
                       help="stop a visitor's kernel once it has been idle this many seconds, "
                       "its tab open or not (the student reloads the page after that; default "
                       f"{CULL_AFTER:g})")
    forms.set_defaults(func=_cmd_forms)
    return parser


def cmd_keys(args: argparse.Namespace) -> int:
    from libsrv.security import make_keys

    for path in make_keys(args.dir, args.client):
        print(f"wrote {path}")
    print(f"Start the server with: python -m libsrv serve --curve {args.dir}\n"
          f"Give each client {args.dir}/server.key and its own NAME.key_secret.")
    return 0


def _cmd_forms(args: argparse.Namespace) -> int:
    from libsrv.forms_page import serve_forms

    # SIGTERM (a service manager, a closed terminal) stops the page as Ctrl-C does, so the
    # server started for it is stopped and its catalog copy removed
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return serve_forms(endpoint=args.endpoint, db=Path(args.db) if args.db else None,
                       workers=args.workers, host=args.host, port=args.port,
                       cull_after=args.cull_after, max_kernels=args.max_kernels,
                       token=args.token, lang=args.lang)


def _cmd_demo(args: argparse.Namespace) -> int:
    from libsrv.demo import run_demo

    return run_demo(Path(args.db) if args.db else None, workers=args.workers, storage=args.storage)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, CatalogError, StorageError, ServerUnreachable, FeedError, ValueError,
            OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except zmq.ZMQError as error:
        print(f"error: {error} (is another server already using that port?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
