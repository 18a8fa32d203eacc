"""Server settings: defaults, the class's config.json, and endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libsrv.defaults import (
    DATA_PATH_NAMES,
    DEDUP_SECONDS,
    DEFAULT_DATA_PATH,
    DEFAULT_ENGINE,
    DEFAULT_FEED_HWM,
    DEFAULT_HOST,
    DEFAULT_LOAN_DAYS,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_PORT,
    DEFAULT_TITLE_LOAN_DAYS,
    DEFAULT_TRANSPORT,
    DEFAULT_WORKER_TIMEOUT,
    DEFAULT_WORKERS,
    ENGINE_NAMES,
    TRANSPORT_NAMES,
)

__all__ = [
    "DEDUP_SECONDS",
    "DEFAULT_ENGINE",
    "DEFAULT_FEED_HWM",
    "DEFAULT_HOST",
    "DEFAULT_LOAN_DAYS",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_WORKERS",
    "DEFAULT_WORKER_TIMEOUT",
    "ConfigError",
    "ServerConfig",
]

DEFAULT_DB = "data/catalog.json"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ENDPOINT_VARIABLE = "LIBSRV_ENDPOINT"  # the forms page's kernels find the server here
LANG_VARIABLE = "LIBSRV_LANG"  # ... and the language of the page


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a server process needs; picklable, so workers receive it whole."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = DEFAULT_WORKERS
    db: str = DEFAULT_DB
    storage: str = DEFAULT_ENGINE
    loan_days: int = DEFAULT_LOAN_DAYS  # a loan by ISBN
    title_loan_days: int = DEFAULT_TITLE_LOAN_DAYS  # a loan by title
    lang: str | None = None  # None: each reply in the language of its request's action name
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    locking: bool = True
    fsync: bool | None = None
    quiet: bool = False
    # a worker busy this long on one request is killed and replaced; None: from the catalog's
    # size, at least DEFAULT_WORKER_TIMEOUT
    worker_timeout: float | None = None
    curve: str | None = None  # folder with server.key_secret and authorized/ (CurveZMQ)
    remember_seconds: float = DEDUP_SECONDS  # request ids are kept at least this long
    # the live feed (PUB): on `pub_port`; None: the request port + 1 (a free port when the
    # request port is 0); 0: a free port. The server puts the port it bound here for workers.
    publish: bool = True
    pub_port: int | None = None
    feed_hwm: int = DEFAULT_FEED_HWM
    # what clients speak: ZeroMQ REQ/REP, or gRPC or HTTP/JSON (libsrv.transports)
    transport: str = DEFAULT_TRANSPORT
    # the broker's data path (libsrv.data_path_build): compiled when it can be, or Python
    data_path: str = DEFAULT_DATA_PATH

    def __post_init__(self) -> None:
        """Refuse values no server can run with (ConfigError, saying which)."""
        from libsrv.messages import LANGUAGES

        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, not {self.workers!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, not {self.port!r}")
        if self.storage not in ENGINE_NAMES:
            raise ConfigError(f"storage must be one of {', '.join(ENGINE_NAMES)}, not "
                              f"{self.storage!r}")
        if self.transport not in TRANSPORT_NAMES:
            raise ConfigError(f"transport must be one of {', '.join(TRANSPORT_NAMES)}, not "
                              f"{self.transport!r}")
        if self.data_path not in DATA_PATH_NAMES:
            raise ConfigError(f"data_path must be one of {', '.join(DATA_PATH_NAMES)}, not "
                              f"{self.data_path!r}")
        if self.transport != DEFAULT_TRANSPORT and self.curve:
            raise ConfigError("curve encrypts ZeroMQ only; the gRPC and HTTP transports run "
                              "without it")
        if self.lang is not None and self.lang not in LANGUAGES:
            raise ConfigError(f"lang must be one of {', '.join(LANGUAGES)}, not {self.lang!r}")
        for name in ("loan_days", "title_loan_days"):
            days = getattr(self, name)
            if not isinstance(days, int) or isinstance(days, bool) or days < 1:
                raise ConfigError(f"{name} must be at least 1, not {days!r}")
        for name in ("lock_timeout", "remember_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be more than 0")
        if self.pub_port is not None and (not isinstance(self.pub_port, int)
                                          or not 0 <= self.pub_port <= 65535):
            raise ConfigError(f"pub_port must be between 0 and 65535, not {self.pub_port!r}")
        if self.worker_timeout is not None and self.worker_timeout <= 0:
            raise ConfigError("worker_timeout must be more than 0")

    @property
    def bind_endpoint(self) -> str:
        return self._endpoint(self.port)

    @property
    def pub_bind_endpoint(self) -> str:
        """Where the live feed binds (see `pub_port`)."""
        if self.pub_port is not None:
            return self._endpoint(self.pub_port)
        return self._endpoint(self.port + 1 if 0 < self.port < 65535 else 0)

    def _endpoint(self, port: int) -> str:
        host = "*" if self.host in ("0.0.0.0", "*") else self.host
        return f"tcp://{host}:{port or '*'}"


def read_config_file(path: Path | str) -> dict[str, Any]:
    """The class's config.json: ``{"server": {"host", "port"}, "client": {"server_host",
    "server_port"}, "web": {...}}``. Unknown sections are ignored."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def server_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ServerConfig fields the config file sets (its "server" section)."""
    section = config.get("server") or {}
    if not isinstance(section, dict):
        raise ConfigError("the config's 'server' section must be an object")
    known = {"host", "port", "workers", "db", "storage", "loan_days", "title_loan_days", "lang"}
    return {key: value for key, value in section.items() if key in known}


def client_endpoint(config: dict[str, Any]) -> str:
    """The endpoint the config's "client" section points at (the class's client did this)."""
    section = config.get("client") or {}
    host = section.get("server_host", DEFAULT_HOST)
    port = section.get("server_port", DEFAULT_PORT)
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    return f"tcp://{host}:{int(port)}"
