"""Server settings: defaults, the class's config.json, and endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libsrv.library import DEFAULT_LOAN_DAYS
from libsrv.storage import DEFAULT_ENGINE
from libsrv.storage.base import DEDUP_SECONDS
from libsrv.storage.files import DEFAULT_LOCK_TIMEOUT

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5555
DEFAULT_WORKERS = 2
DEFAULT_DB = "data/catalog.json"


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
    loan_days: int = DEFAULT_LOAN_DAYS
    lang: str | None = None  # None: each reply in the language of its request's action name
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    locking: bool = True
    fsync: bool | None = None
    quiet: bool = False
    worker_timeout: float = 10.0  # a worker busy this long on one request is killed and replaced
    curve: str | None = None  # folder with server.key_secret and authorized/ (CurveZMQ)
    remember_seconds: float = DEDUP_SECONDS  # request ids are kept at least this long

    @property
    def bind_endpoint(self) -> str:
        host = "*" if self.host in ("0.0.0.0", "*") else self.host
        port = "*" if self.port == 0 else str(self.port)
        return f"tcp://{host}:{port}"


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
    known = {"host", "port", "workers", "db", "storage", "loan_days", "lang"}
    return {key: value for key, value in section.items() if key in known}


def client_endpoint(config: dict[str, Any]) -> str:
    """The endpoint the config's "client" section points at (the class's client did this)."""
    section = config.get("client") or {}
    host = section.get("server_host", DEFAULT_HOST)
    port = section.get("server_port", DEFAULT_PORT)
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    return f"tcp://{host}:{int(port)}"
