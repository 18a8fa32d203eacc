"""Generate the gRPC stubs of libsrv/transports/library.proto (library_pb2.py and
library_pb2_grpc.py beside it), which are committed so that running the kit needs only grpcio
and protobuf, not the compiler.

    python scripts/grpc_stubs.py          # rewrite the stubs (needs grpcio-tools: the dev extra)
    python scripts/grpc_stubs.py --check  # exit 1 if the committed stubs are not what it makes

Run from anywhere; the imports it writes are absolute (`from libsrv.transports import ...`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = Path("libsrv/transports/library.proto")
STUBS = ("library_pb2.py", "library_pb2_grpc.py")


def generate(into: Path) -> dict[str, str]:
    """The stubs' text, by file name, compiled into the folder `into`."""
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT}", f"--python_out={into}", f"--grpc_python_out={into}",
            str(ROOT / PROTO)]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    return {name: (into / PROTO.parent / name).read_text(encoding="utf-8") for name in STUBS}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        made = generate(Path(folder))
    target = ROOT / PROTO.parent
    stale = [name for name, text in made.items()
             if not (target / name).exists()
             or (target / name).read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for name in stale:
            print(f"{target / name} is out of date: run python scripts/grpc_stubs.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (target / name).write_text(made[name], encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
