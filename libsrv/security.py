"""CurveZMQ for the kit: key pairs, the server's allow-list, and the client's keys.

``python -m libsrv keys --dir keys --client ana --client luis`` writes a server key pair and one
pair per client, and puts the clients' public keys in ``keys/authorized/``. The server, started
with ``serve --curve keys``, encrypts every connection and admits only clients whose public key
is in that folder (pyzmq's ZAP authenticator). A client needs the server's public key and its own
key pair: ``LibraryClient(endpoint, curve=CurveKeys.from_files("keys/server.key",
"keys/ana.key_secret"))``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

SERVER = "server"
AUTHORIZED = "authorized"


class KeyFileError(ValueError):
    """Key files that are missing or unreadable."""


def make_keys(folder: Path | str, clients: list[str]) -> list[Path]:
    """A server key pair (kept if it exists) and a pair per client; clients' public keys are
    copied into `folder`/authorized. Returns the files written."""
    if not zmq.has("curve"):
        raise KeyFileError("this libzmq was built without CurveZMQ")
    folder = Path(folder)
    (folder / AUTHORIZED).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if not (folder / f"{SERVER}.key_secret").exists():
        written += [Path(p) for p in zmq.auth.create_certificates(folder, SERVER)]
    for name in clients:
        if name == SERVER or not name.isidentifier():
            raise KeyFileError(f"bad client name {name!r}: use letters, digits and _")
        public, secret = zmq.auth.create_certificates(folder, name)
        shutil.copy(public, folder / AUTHORIZED / Path(public).name)
        written += [Path(public), Path(secret), folder / AUTHORIZED / Path(public).name]
    return written


def _load(path: Path | str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as error:
        raise KeyFileError(f"cannot read the key file {path}: {error}") from None


def _load_pair(path: Path | str) -> tuple[bytes, bytes]:
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


@dataclass(frozen=True)
class CurveKeys:
    """What a client needs: the server's public key and its own key pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_key: Path | str, client_secret: Path | str) -> CurveKeys:
        return cls(_load(server_key)[0], *_load_pair(client_secret))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


class CurveServer:
    """The server side: its key pair on the listening socket, and the ZAP authenticator that
    admits only the public keys in `keydir`/authorized. Stop it when the server stops."""

    def __init__(self, ctx: zmq.Context, keydir: Path | str) -> None:
        keydir = Path(keydir)
        self.public, self._secret = _load_pair(keydir / f"{SERVER}.key_secret")
        authorized = keydir / AUTHORIZED
        if not authorized.is_dir():
            raise KeyFileError(f"{authorized} does not exist: no client could connect")
        from zmq.auth.thread import ThreadAuthenticator  # asyncio: only with --curve

        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(authorized))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_server = True
        sock.curve_publickey = self.public
        sock.curve_secretkey = self._secret

    def stop(self) -> None:
        self._auth.stop()
