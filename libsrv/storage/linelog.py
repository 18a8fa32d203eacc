"""An append-only file of JSON lines that several processes write (under the catalog lock) and
read (without it), with generations so that it can be rewritten while others read it.

The first line of each generation is ``{"gen": N}``. A record is visible once its line,
newline included, is in the file; a line without its newline is a torn write from a process
that died and is never read. Writers truncate such a tail before appending.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libsrv.storage.files import (
    StorageError,
    atomic_write,
    create_temp,
    fsync_folder,
    temp_name,
)

Record = dict[str, Any]


class UnreadableLine(StorageError):
    """A line of the log is not JSON: the file is damaged, or a reader's position is wrong."""


@dataclass
class NextGeneration:
    """A generation written ahead in a temporary file, not yet in place (see LineLog.prepare).
    `fd` is open on the temporary file until it is committed or discarded."""

    cut: tuple[int, int]  # the generation it follows and the offset it was cut at
    tmp: Path
    fd: int
    size: int  # bytes of the header and the carried records
    records: int  # carried records


def encode_line(record: Record) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


class LineLog:
    """One process's view of the log: an open descriptor, the offset read up to, the generation.

    Call `open` with the lock held before anything else. `catch_up` needs no lock; `append` and
    `rewrite` need the lock and a view that has just caught up.
    """

    def __init__(self, path: Path, *, fsync: bool = False, exclusive: bool = True,
                 like: Path | None = None) -> None:
        """`like`: the file whose permissions the log's files get (the catalog)."""
        self.path = path
        self.like = like
        self.fsync = fsync
        # Without the lock (the unsafe teaching mode) another writer's fresh line may look
        # like a torn tail, so tails are only cut when writers exclude each other.
        self.exclusive = exclusive
        self.gen = 0
        self.header: Record = {}  # the first line of the generation opened last
        self.count = 0  # records in this generation read or written by this process
        self._fd = -1
        self._ino = -1
        self._offset = 0

    # -- reading

    def open(self, identity: str | None = None) -> list[Record]:
        """(Lock held.) Open the log, creating it if missing (its header naming `identity`,
        the snapshot it extends); all records of the generation."""
        self.close()
        if not self.path.exists():
            first = {"gen": 1} if identity is None else {"gen": 1, "snapshot": identity}
            atomic_write(self.path, encode_line(first), fsync=self.fsync, like=self.like)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._ino = os.fstat(self._fd).st_ino
        self._offset = 0
        self.count = 0
        header, records = self._read_lines(first=True)
        if header is None:
            raise StorageError(f"{self.path} has no generation header")
        self.gen = header
        self.header = records[0]
        records += self._complete_last_line()
        self._repair_tail()
        return records[1:]

    def catch_up(self) -> list[Record] | None:
        """New records since the last call, or None when the caller must reload everything
        with the lock held: the log was rewritten more than once meanwhile, or this view's
        position does not fall on a line (it re-syncs from the file instead of failing).
        Where a new generation starts, its header ``{"gen": N}`` is among the records."""
        try:
            return self._catch_up()
        except UnreadableLine:
            return None

    def _catch_up(self) -> list[Record] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        if st.st_ino == self._ino:
            if st.st_size <= self._offset:
                return []
            return self._read_lines(first=False)[1]
        # Rewritten: the old file is final (rewrites happen under the lock, after all appends),
        # so finish it, then continue in the new generation if it is the next one.
        records = self._read_lines(first=False)[1]
        old_gen, old_end = self.gen, self._offset
        self.close()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._ino = os.fstat(self._fd).st_ino
        self._offset = 0
        self.count = 0
        skipped = self._skip_known(old_gen, old_end)
        if skipped is not None:
            return records + [skipped] + self._read_lines(first=False)[1]
        header, more = self._read_lines(first=True)
        if header != old_gen + 1:
            return None
        self.gen = header
        return records + more

    def _skip_known(self, old_gen: int, old_end: int) -> Record | None:
        """When the new generation says it carries what this view has already read (its
        header names the old generation and the offset it was cut at, and how many bytes it
        carries), move past that region without parsing it; the header, or None."""
        if not self.exclusive:
            return None
        first = os.pread(self._fd, 4096, 0)
        newline = first.find(b"\n")
        if newline < 0:
            return None
        try:
            header = json.loads(first[:newline])
        except ValueError:
            return None
        base, carried = header.get("base"), header.get("carried")
        if header.get("gen") != old_gen + 1 or not isinstance(base, list) or len(base) != 2 \
                or base[0] != old_gen or not isinstance(carried, int) \
                or not isinstance(base[1], int) or not 0 <= base[1] <= old_end:
            return None
        offset = newline + 1 + carried + (old_end - base[1])
        if offset > os.fstat(self._fd).st_size or os.pread(self._fd, 1, offset - 1) != b"\n":
            return None  # not where a line ends: read it all instead
        self._offset = offset
        self.gen = header["gen"]
        self.count = int(header.get("records", 0))
        return header

    def _read_lines(self, *, first: bool) -> tuple[int | None, list[Record]]:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size - self._offset, self._offset) if size > self._offset else b""
        end = data.rfind(b"\n") + 1
        header: int | None = None
        records: list[Record] = []
        at = self._offset
        for number, line in enumerate(data[:end].split(b"\n")[:-1]):
            try:
                record = json.loads(line)
            except ValueError:
                raise UnreadableLine(
                    f"{self.path}: the line at byte {at} is not a record; the file is "
                    "damaged") from None
            at += len(line) + 1
            if first and number == 0:
                header = record.get("gen") if isinstance(record, dict) else None
            records.append(record)
        self._offset += end
        self.count += len(records) - (1 if first and records else 0)
        return header, records

    # -- writing (lock held)

    def _complete_last_line(self) -> list[Record]:
        """(Lock held, at open.) A last line that holds a whole record but lost its newline
        (a copy, an editor) is a record, not a torn write: a prefix of a record is never a
        whole JSON object. Give it its newline; the record, if so."""
        if not self.exclusive:
            return []
        size = os.fstat(self._fd).st_size
        tail = os.pread(self._fd, size - self._offset, self._offset)
        try:
            record = json.loads(tail) if tail.strip() else None
        except ValueError:
            return []
        if not isinstance(record, dict):
            return []
        os.write(self._fd, b"\n")
        self._offset = size + 1
        self.count += 1
        return [record]

    def _repair_tail(self) -> None:
        """Cut off a torn last line left by a writer that died mid-append: bytes past this
        view's position with no newline among them (a whole line there is someone's record,
        never cut)."""
        if not self.exclusive:
            return
        size = os.fstat(self._fd).st_size
        if size > self._offset and b"\n" not in os.pread(self._fd, size - self._offset,
                                                          self._offset):
            os.ftruncate(self._fd, self._offset)

    def append(self, record: Record) -> None:
        """(Lock held, just caught up.) Append one record; on failure the file is unchanged."""
        line = encode_line(record)
        self._repair_tail()
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (short write)")
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            if self.exclusive:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._offset)
            raise StorageError(f"could not append to {self.path}: {exc.strerror or exc}") from exc
        # where our line landed, from the file: if someone else's line came between (only
        # possible if mutual exclusion failed), stay put and read them all on the next catch_up
        end = os.lseek(self._fd, 0, os.SEEK_CUR)
        if self.exclusive and end - len(line) == self._offset:
            self._offset = end
            self.count += 1
        # else: other writers' lines may precede ours; the next catch_up reads them all in
        # file order, ours included (records are whole states, so applying ours twice is fine)

    @property
    def position(self) -> tuple[int, int]:
        """(generation, offset read or written up to): where a compaction cuts the log."""
        return self.gen, self._offset

    def prepare(self, lines: list[bytes], cut: tuple[int, int], identity: str | None = None,
                seq: int | None = None) -> NextGeneration:
        """Write the generation after `cut[0]` to a temporary file: a header naming the cut,
        then `lines` (the records it carries). Needs no lock and touches no state of this view,
        so it may run on another thread; `commit` puts it in place."""
        carried = b"".join(lines)
        fields: Record = {"gen": cut[0] + 1, "base": list(cut), "carried": len(carried),
                          "records": len(lines)}
        if identity is not None:
            fields["snapshot"] = identity
        if seq is not None:
            fields["seq"] = seq  # the last change the generation's snapshot holds
        header = encode_line(fields)
        tmp = temp_name(self.path)
        # a new generation replaces the old one: it is on disk first, whatever `fsync` says
        fd = create_temp(tmp, header + carried, fsync=True, like=self.like or self.path)
        return NextGeneration(cut, tmp, fd, len(header) + len(carried), len(lines))

    def commit(self, nxt: NextGeneration) -> int:
        """(Lock held, just caught up.) Append what was written since the cut to `nxt`, put
        it in place of the log and continue in it; the number of records so copied.
        Raises StorageError (and leaves the log as it was) if the log moved to another
        generation meanwhile or the files fail."""
        gen, start = nxt.cut
        if gen != self.gen or start > self._offset:
            raise StorageError(f"{self.path} moved on while its next generation was written")
        tail = os.pread(self._fd, self._offset - start, start) if self._offset > start else b""
        try:
            view = memoryview(tail)
            while view:
                view = view[os.write(nxt.fd, view):]
            os.fsync(nxt.fd)
            os.replace(nxt.tmp, self.path)
        except OSError as exc:
            raise StorageError(f"could not rewrite {self.path}: {exc.strerror or exc}") from exc
        fsync_folder(self.path.parent)
        # Keep the descriptor of the file written, not of whatever the name points to next:
        # without the lock (the unsafe teaching mode) another writer may rename its own
        # generation over ours at once, and our offset belongs to our file.
        self.close()
        self._fd, self._ino = nxt.fd, os.fstat(nxt.fd).st_ino
        nxt.fd = -1
        self._offset = nxt.size + len(tail)
        self.gen = gen + 1
        copied = tail.count(b"\n")
        self.count = nxt.records + copied
        return copied

    @staticmethod
    def discard(nxt: NextGeneration) -> None:
        """Forget a prepared generation that will not be committed."""
        if nxt.fd >= 0:
            os.close(nxt.fd)
            nxt.fd = -1
        nxt.tmp.unlink(missing_ok=True)

    def rewrite(self, lines: list[bytes]) -> None:
        """(Lock held, just caught up.) Start the next generation holding `lines` (records
        already encoded, newline included)."""
        nxt = self.prepare(lines, self.position)
        try:
            self.commit(nxt)
        finally:
            self.discard(nxt)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._ino = -1
