"""A run's settings, described once: `RunConfig`, its command-line flags, the command that
repeats a run, and the folder name that tells runs apart all derive from `SETTINGS`.

`add_flags` puts every setting on a parser; `config_from_args` reads them back; `run_command`
writes the ``python -m libsrv_bench run`` line whose parsing gives the same `RunConfig` again;
`run_name` names a run by every setting that differs from the default.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
from dataclasses import dataclass, fields, replace
from typing import Any

from libsrv.config import DEFAULT_WORKERS
from libsrv.defaults import DEFAULT_TRANSPORT, TRANSPORT_NAMES
from libsrv.storage import DEFAULT_ENGINE, ENGINES
from libsrv_bench.dialects import BUILT_IN, DEFAULT_DIALECT
from libsrv_bench.workloads import WORKLOADS

DEFAULT_DURATION = 10.0
DEMO_SECONDS = 2.0  # the demo's runs: short, and repeated in rounds to show their spread
DEMO_ROUNDS = 3
ECHO_VIA = ("proxy", "broker", "raw")  # the first is what --echo alone means
DEFAULT_MAX_ERRORS = 0.05
# bench's reference below this share of the lean generator's (one process per client): bench's
# own generator set the reference's pace (compare warns, the notebooks say so)
GENERATOR_FLOOR = 0.9
NAME_LIMIT = 120  # a run folder's name, in characters (file systems allow 255 bytes)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; stored whole in its summary so it can be repeated."""

    endpoint: str | None = None  # an existing server; None starts one
    workers: int = DEFAULT_WORKERS
    storage: str = DEFAULT_ENGINE
    unsafe_no_lock: bool = False
    fsync: bool | None = None
    books: int = 10_000
    clients: int = 16
    processes: int = 0
    duration: float | None = DEFAULT_DURATION
    requests: int | None = None
    rate: float | None = None
    think: float = 0.0
    warmup: float = 1.0
    timeout: float = 5.0
    retries: int = 0
    no_ids: bool = False  # requests without an id, as the class's client sends them
    kill_worker_every: float | None = None  # seconds; SIGKILL one worker of our server each time
    faults: tuple[str, ...] = ()  # a fault schedule, KIND@START[+DURATION][:ARG] (.faults)
    proxy: bool = False  # the fault proxy between clients and target even with no network fault
    workload: str = "read-mostly"
    hot: int | None = None
    seed: int = 1
    # instead of the server, an echo: "proxy" (libzmq's C proxy in front of `workers` REP echo
    # workers, or a bare REP echo with 0 workers: the transport's limit) or "broker" (the kit's
    # broker in front of echo workers: the broker's own cost); "" is the server
    echo: str = ""
    observe: bool = False  # subscribe to the server's feed and check it as a second history
    no_pub: bool = False  # start the server without its live feed (what publishing costs)
    # load from ipyparallel engines: a local cluster of `engines` (0: none, load from here),
    # or the cluster whose client connection file is `cluster` (`engines` of them; 0: all)
    engines: int = 0
    cluster: str | None = None
    # the target's protocol (libsrv_bench.dialects), its catalog file, and the name it goes by
    dialect: str = DEFAULT_DIALECT
    catalog: str | None = None
    target: str = ""
    # the command that starts the target at --endpoint (a group's own server): bench starts
    # it, stops it at the end, and can kill or pause it (faults kill-server, stop-server)
    server_cmd: str = ""
    # a run whose errors and timeouts are more than this share of its requests is not clean:
    # a server that answers nothing properly must not pass for one that loses nothing
    max_errors: float = DEFAULT_MAX_ERRORS
    label: str = ""
    # what the server bench starts speaks (an --endpoint's scheme says it for that one)
    transport: str = DEFAULT_TRANSPORT
    # the class's Flask gateway between the clients (HTTP) and the ZeroMQ target
    gateway: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.echo, bool):  # echo=True: the transport's limit
            object.__setattr__(self, "echo", "proxy" if self.echo else "")
        if self.echo not in ("", *ECHO_VIA):
            raise ValueError(f"echo must be one of {', '.join(ECHO_VIA)}, not {self.echo!r}")
        # a run has a length: a count of requests replaces the time, else the time is given
        if self.requests is not None and self.duration is not None:
            object.__setattr__(self, "duration", None)
        elif self.requests is None and self.duration is None:
            object.__setattr__(self, "duration", DEFAULT_DURATION)
        if self.cluster and not self.endpoint:
            raise ValueError("--cluster needs --endpoint: a server the engines can reach "
                             "(start one with `python -m libsrv serve --host 0.0.0.0`)")
        if (self.engines or self.cluster) and self.echo:
            raise ValueError("--engines and --cluster load the server, not an echo")
        if self.engines < 0:
            raise ValueError("engines must be 0 or more")
        if self.observe and self.no_pub:
            raise ValueError("--observe needs the feed that --no-pub turns off")
        if self.observe and self.echo:
            raise ValueError("an echo publishes no feed: --observe cannot go with --echo")
        if not 0 <= self.max_errors <= 1:
            raise ValueError("max_errors is a share of the requests, from 0 to 1")
        if self.dialect != DEFAULT_DIALECT and self.echo:
            raise ValueError("an echo speaks the kit's protocol: --dialect cannot go with --echo")
        if self.transport not in TRANSPORT_NAMES:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORT_NAMES)}, not "
                             f"{self.transport!r}")
        if self.endpoint and self.transport != DEFAULT_TRANSPORT:
            raise ValueError("--transport says what the server bench starts speaks; an "
                             "--endpoint's scheme (tcp://, grpc://, http://) says it for that "
                             "one")
        spoken = transport_of(self.endpoint) if self.endpoint else self.transport
        if spoken != DEFAULT_TRANSPORT:
            if self.echo in ("broker", "raw"):
                raise ValueError(f"--echo {self.echo} is its own stack: it cannot go with gRPC "
                                 "or HTTP (--echo alone is their own stack's echo)")
            if self.dialect != DEFAULT_DIALECT:
                raise ValueError("over gRPC and HTTP the bench speaks the kit's protocol: "
                                 "--dialect cannot go with them")
            if self.proxy or any(not f.split("@", 1)[0].endswith(("-worker", "-server",
                                                                   "-feed"))
                                 for f in self.faults):
                raise ValueError("the fault proxy relays ZeroMQ: network faults and --proxy "
                                 "cannot go with gRPC or HTTP (faults on processes can)")
        if self.gateway and (spoken != DEFAULT_TRANSPORT or self.dialect != DEFAULT_DIALECT
                             or self.proxy or self.faults):
            raise ValueError("--gateway stands in front of a ZeroMQ server in the kit's "
                             "protocol, without the fault proxy")
        if self.server_cmd and not self.endpoint:
            raise ValueError("--server-cmd starts the server at --endpoint: give both (the "
                             "kit's own server needs neither)")
        if self.server_cmd and (self.engines or self.cluster):
            raise ValueError("--server-cmd starts the server on this machine: not with "
                             "--engines or --cluster")
        if self.no_ids and self.retries:
            raise ValueError("a retry needs the request's id: --retries cannot go with "
                             "--no-ids")

    def name(self) -> str:
        return run_name(self)


@dataclass(frozen=True)
class Setting:
    """One field of RunConfig on the command line: its flag, its type, its help line, and the
    tag that names a non-default value in a run's folder name; `unset` says what happens
    when a setting whose default is None is not given."""

    field: str
    # int, float, str, bool (a switch), "tristate" (--x / --no-x / neither), "choice", or
    # "list" (a flag given again for each item)
    type: Any
    help: str
    tag: str
    unset: str = ""
    cli: str = ""  # the flag, when it is not the field's name

    @property
    def flag(self) -> str:
        return self.cli or "--" + self.field.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("endpoint", str, "load an existing server (tcp://HOST:PORT) instead of starting "
            "one", "at", "start a server"),
    Setting("workers", int, "server worker processes; 0 = one REP socket", "w"),
    Setting("storage", str, f"storage engine: {', '.join(sorted(ENGINES))}", "st"),
    Setting("unsafe_no_lock", bool, "start the server without its file lock (to watch lost "
            "updates)", "unsafe"),
    Setting("fsync", "tristate", "make the server wait for the disk on every write (default: "
            "the engine's own)", "fsync"),
    Setting("books", int, "size of the generated catalog", "b"),
    Setting("clients", int, "concurrent REQ clients", "c"),
    Setting("processes", int, "load processes (0: one per 250 clients; the echo baseline: "
            "one per CPU)", "p"),
    Setting("duration", float, "seconds measured, after the warm-up", "d"),
    Setting("requests", int, "or a number of requests (no warm-up)", "n", "run for --duration"),
    Setting("rate", float, "open loop: total requests per second", "rate",
            "closed loop, each client waits for its reply"),
    Setting("think", float, "closed loop: seconds between a reply and the next request",
            "think"),
    Setting("warmup", float, "seconds left out of the figures (not out of the history)",
            "warm"),
    Setting("timeout", float, "seconds a request waits for its reply", "to"),
    Setting("retries", int, "resend a timed-out request this many times (same id, new "
            "socket)", "retry"),
    Setting("no_ids", bool, "send requests without an id, as the class's client does (no "
            "client retries then)", "noids"),
    Setting("kill_worker_every", float, "SIGKILL one worker of the server every this many "
            "seconds", "kill", "never"),
    Setting("faults", "list", "a fault, KIND@START[+DURATION][:ARG] in seconds from the start "
            "of the load: kill-worker@3, stop-worker@5+1, kill-feed@4 (a server bench starts); "
            "partition@8+2, delay@11+2:20ms, loss@14+2:5%, duplicate@3+2:10%, "
            "reorder@6+2:20% (through the fault proxy; any target). Repeat the flag for a "
            "schedule", "fault", "none", cli="--fault"),
    Setting("proxy", bool, "put the fault-injecting proxy between the clients and the target "
            "even with no network fault (what the proxy itself costs)", "proxy"),
    Setting("workload", str, f"{', '.join(WORKLOADS)}, or mix:action=weight,...", ""),
    Setting("hot", int, "restrict the workload to this many books", "hot", "every book"),
    Setting("seed", int, "fixes the sequence of requests", "seed"),
    Setting("echo", "choice", "load an echo instead of the server: proxy (libzmq's C proxy "
            "in front of --workers REP echo workers, or a bare REP echo with --workers 0: the "
            "transport's limit; --echo alone; with --transport grpc or http, that stack's "
            "echo), broker (the kit's broker in front of echo workers: the broker's cost) or "
            "raw (length-prefixed frames on plain TCP, one asyncio process: the machine's "
            "floor under every stack)",
            "echo", "the server"),
    Setting("observe", bool, "subscribe to the server's live feed during the run and check "
            "it against the clients' history and the catalog file", "obs"),
    Setting("no_pub", bool, "start the server without its live feed (--no-pub), to measure "
            "what publishing costs", "nopub"),
    Setting("engines", int, "spread the load over this many ipyparallel engines: a local "
            "cluster, or with --cluster that many of its engines (0: here, or with --cluster "
            "all)", "e"),
    Setting("cluster", str, "an ipyparallel cluster's client connection file "
            "(ipcontroller-client.json): load from its engines; needs --endpoint", "cl",
            "a local cluster with --engines, else no cluster"),
    Setting("dialect", str, f"the target's protocol: {', '.join(BUILT_IN)} (the class "
            "report's Spanish messages), or FILE.py:Name (a Dialect class of your own)", "dl"),
    Setting("catalog", str, "the target's catalog file (the class's {\"libros\": [...]} or "
            "the kit's): its books and their states before the run, read again after it", "cat",
            "ask the server"),
    Setting("target", str, "the target's name in summaries and reports", "tg",
            "the endpoint, or the kit's server", cli="--name"),
    Setting("server_cmd", str, "the command that starts the server at --endpoint (quoted as "
            "one argument): bench starts it, waits until it answers, stops it at the end, and "
            "can kill-server or stop-server it", "cmd", "the server at --endpoint is already "
            "running"),
    Setting("max_errors", float, "the share of requests that may fail (errors and timeouts) "
            "before the run is not clean", "maxerr"),
    Setting("label", str, "name the run's folder", "", "named by its settings"),
    Setting("gateway", bool, "put the class's Flask gateway (browser -> Flask -> ZeroMQ) "
            "between the clients and the target: what that hop costs", "gw"),
    Setting("transport", str, f"what the server bench starts speaks: "
            f"{', '.join(TRANSPORT_NAMES)} (docs/transports.md; an --endpoint's scheme says "
            "it for that one)", "tr"),
)
DEFAULTS = RunConfig()
_SHOWN_ALWAYS = {"workload", "clients", "seed", "duration", "requests"}


def same_load(config: RunConfig) -> RunConfig:
    """`config` with an explicit number of load processes (one per CPU, at most one per
    client, unless given): what the echo baselines need, and what a comparison gives every
    row so that all are driven alike."""
    if config.processes:
        return config
    return replace(config, processes=max(1, min(config.clients, os.cpu_count() or 1)))


def _default_text(setting: Setting) -> str:
    value = getattr(DEFAULTS, setting.field)
    if setting.type is bool:
        return ""
    if value in (None, "", ()):
        return f" (default: {setting.unset})" if setting.unset else ""
    return f" (default {value:g})" if isinstance(value, float) else f" (default {value})"


def add_flags(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """Every setting as a flag (those in `skip` left out), defaulting to RunConfig's."""
    length = parser.add_mutually_exclusive_group()
    for setting in SETTINGS:
        if setting.field in skip:
            continue
        target = length if setting.field in ("duration", "requests") else parser
        text = (setting.help + _default_text(setting)).replace("%", "%%")  # argparse formats it
        if setting.type is bool:
            target.add_argument(setting.flag, action="store_true", help=text)
        elif setting.type == "choice":
            target.add_argument(setting.flag, nargs="?", const=ECHO_VIA[0], choices=ECHO_VIA,
                                default=None, help=text)
        elif setting.type == "tristate":
            target.add_argument(setting.flag, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        elif setting.type == "list":
            target.add_argument(setting.flag, action="append", default=None, help=text,
                                dest=setting.field, metavar=setting.tag.upper())
        else:
            target.add_argument(setting.flag, type=setting.type, default=None, help=text,
                                dest=setting.field)


def config_from_args(args: argparse.Namespace, **overrides: Any) -> RunConfig:
    """The RunConfig of parsed flags: a flag not given keeps RunConfig's default."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = getattr(args, setting.field, None)
        if value is None or (setting.type is bool and not value):
            continue  # not given: RunConfig's default
        values[setting.field] = tuple(value) if setting.type == "list" else value
    values.update(overrides)
    return RunConfig(**values)


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_flags(config: RunConfig) -> list[str]:
    """The ``python -m libsrv_bench run`` flags that give back exactly this configuration."""
    flags: list[str] = []
    for setting in SETTINGS:
        value = getattr(config, setting.field)
        default = getattr(DEFAULTS, setting.field)
        if value == default and setting.field not in _SHOWN_ALWAYS:
            continue
        if value is None:
            continue
        if setting.type is bool:
            flags += [setting.flag] if value else []
        elif setting.type == "tristate":
            flags.append(setting.flag if value else "--no-" + setting.flag[2:])
        elif setting.type == "list":
            for item in value:
                flags += [setting.flag, item]
        else:
            flags += [setting.flag, _format(value)]
    return flags


# The line before the commands a report prints, so that they run as printed in a terminal
# opened in the kit's folder (kit.py made .venv there; conda users activate their env).
ACTIVATE = "source .venv/bin/activate  # once per terminal; with conda: conda activate libsrv"


def run_command(config: RunConfig) -> str:
    """The command that repeats a run of `config` (after ACTIVATE)."""
    return shlex.join(["python", "-m", "libsrv_bench", "run", *run_flags(config)])


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._=+-]+")


def transport_of(endpoint: str) -> str:
    """The transport an endpoint's scheme names: grpc, http, or zmq for ZeroMQ's."""
    scheme = endpoint.split("://", 1)[0]
    return scheme if scheme in TRANSPORT_NAMES else DEFAULT_TRANSPORT


def run_name(config: RunConfig) -> str:
    """A folder name that differs whenever a setting differs: the workload and the target,
    then every other setting that is not the default, as tag and value."""
    if config.label:
        return _UNSAFE_CHARS.sub("_", config.label)
    unsafe = "-unsafe" if config.unsafe_no_lock else ""
    if config.endpoint:  # someone else's server: named by what it is, not by our defaults
        target = config.target or config.endpoint.rsplit("/", 1)[-1]
        parts = [config.workload, target, f"c{config.clients}"]
        named = {"workload", "clients", "label", "endpoint", "target"}
    else:
        named = {"workload", "echo", "workers", "clients", "books", "label"}
        target = f"echo-{config.echo}" if config.echo else f"{config.storage}{unsafe}"
        parts = [config.workload, target, f"w{config.workers}", f"c{config.clients}",
                 f"b{config.books}"]
        if not config.echo:  # else storage settings that do not matter to the echo count
            named |= {"storage", "unsafe_no_lock"}
    for setting in SETTINGS:
        value = getattr(config, setting.field)
        if setting.field in named or value == getattr(DEFAULTS, setting.field):
            continue
        if setting.type is bool:
            parts.append(setting.tag)
        elif setting.type == "tristate":
            parts.append(setting.tag if value else "no" + setting.tag)
        elif setting.type == "list":
            parts += [f"{setting.tag}-{item}" for item in value]
        elif value is not None:  # (duration is None exactly when requests is set)
            parts.append(f"{setting.tag}{_format(value)}")
    name = _UNSAFE_CHARS.sub("_", "-".join(parts))
    if len(name) > NAME_LIMIT:  # long paths and commands: cut, and keep it unique by a hash
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
        name = f"{name[:NAME_LIMIT - 11]}-{digest}"
    return name


def settings_fields() -> set[str]:
    """The names of RunConfig's fields (each must have exactly one Setting; tested)."""
    return {f.name for f in fields(RunConfig)}
