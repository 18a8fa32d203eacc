"""Storage engines against real files. Two Storage objects on one file stand for two worker
processes: each has its own descriptors and flock, exactly as separate processes do."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import signal
import stat
import time
from datetime import date
from pathlib import Path

import filelock
import pytest

from libsrv.catalog import LENT, Catalog
from libsrv.generate import isbn_for, write_catalog
from libsrv.library import Policy, plan_write
from libsrv.protocol import Code, parse_request
from libsrv.storage import IdReused, StorageError, open_storage, prepare_files
from libsrv.storage.files import TryLock
from libsrv.storage.journal import JournalStorage
from libsrv.storage.jsonfile import JsonStorage
from tests.helpers import ENGINES, SHIPPED_CATALOG, wait_until

pytestmark = pytest.mark.fast

DON_QUIJOTE = "9788437604947"
TODAY = date(2026, 2, 23)


def write(storage, action: str, isbn: str = DON_QUIJOTE, borrower: str = "Ana",
          rid: str | None = None) -> dict:
    fields = {"action": action, "isbn": isbn}
    if action.startswith("loan"):
        fields["borrower"] = borrower
    if rid:
        fields["id"] = rid
    request = parse_request([json.dumps(fields).encode()])
    return storage.write(request, lambda c: plan_write(request, c, Policy(), TODAY))


def on_disk(path: Path) -> Catalog:
    return Catalog.from_bytes(path.read_bytes())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_write_in_one_process_is_seen_by_the_next_read_of_another(engine: str,
                                                                     catalog_file: Path) -> None:
    a = open_storage(engine, catalog_file)
    b = open_storage(engine, catalog_file)
    assert b.read().get(DON_QUIJOTE)["estado"] != LENT
    assert write(a, "loan_isbn")["code"] == Code.OK
    assert b.read().get(DON_QUIJOTE)["estado"] == LENT
    assert write(b, "loan_isbn")["code"] == Code.UNAVAILABLE
    assert write(b, "return_isbn")["code"] == Code.OK
    assert a.read().get(DON_QUIJOTE)["estado"] != LENT


@pytest.mark.parametrize("engine", ENGINES)
def test_a_repeated_write_id_gets_the_original_reply_from_any_process(engine: str,
                                                                      catalog_file: Path) -> None:
    a = open_storage(engine, catalog_file)
    b = open_storage(engine, catalog_file)
    first = write(a, "loan_isbn", rid="req-1")
    write(a, "return_isbn", rid="req-2")
    assert write(b, "loan_isbn", rid="req-1") == first  # not lent again
    assert b.read().get(DON_QUIJOTE)["estado"] != LENT
    with pytest.raises(IdReused):
        write(b, "loan_isbn", borrower="Eva", rid="req-1")
    # after a restart too
    a.close()
    b.close()
    c = open_storage(engine, catalog_file)
    assert write(c, "loan_isbn", rid="req-1") == first
    assert c.read().get(DON_QUIJOTE)["estado"] != LENT


def journal_generation(path: Path) -> int:
    return json.loads(Path(f"{path}.journal").read_bytes().splitlines()[0])["gen"]


def compact_and_install(storage: JournalStorage, path: Path, generation: int) -> None:
    """The snapshot is written on a thread and put in place at an idle moment: be idle until
    the journal reaches `generation`."""
    def installed() -> bool:
        storage.idle()
        return journal_generation(path) >= generation

    wait_until(installed, timeout=20, message=f"journal generation {generation}")


def test_journal_compaction_keeps_ids_and_other_processes_follow(tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "small.json", 3)
    isbn = isbn_for(0)
    a = JournalStorage(path, compact_min=4)
    b = JournalStorage(path, compact_min=4)
    first = write(a, "loan_isbn", isbn_for(1), borrower="Zoe", rid="keep-me")
    for n in range(3):  # the 4th change starts a compaction
        write(a, "loan_isbn" if n % 2 == 0 else "return_isbn", isbn)
    compact_and_install(a, path, 2)
    assert on_disk(path).get(isbn_for(1))["prestatario"] == "Zoe"
    assert on_disk(path).get(isbn)["estado"] == LENT
    header = json.loads(Path(f"{path}.journal").read_bytes().splitlines()[0])
    assert header["gen"] == 2 and header["base"][0] == 1 and header["records"] >= 1
    assert b.read().get(isbn)["estado"] == LENT
    for generation in (3, 4):  # two more generations while b looks away
        for n in range(4):
            write(a, "return_isbn" if n % 2 == 0 else "loan_isbn", isbn)
        compact_and_install(a, path, generation)
    assert b.read().get(isbn) == a.read().get(isbn)
    assert write(b, "loan_isbn", isbn_for(1), borrower="Zoe", rid="keep-me") == first
    a.close()
    b.close()


def test_writes_go_on_while_another_process_holds_the_compaction(tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "busy.json", 3)
    other = TryLock(Path(f"{path}.compact.lock"))
    assert other.try_acquire()  # as if another process were writing a snapshot forever
    storage = JournalStorage(path, compact_min=4)
    for n in range(40):
        write(storage, "loan_isbn" if n % 2 == 0 else "return_isbn", isbn_for(0))
        storage.idle()
    assert journal_generation(path) == 1  # nothing compacted, nothing waited
    other.release()
    compact_and_install(storage, path, 2)
    assert on_disk(path).get(isbn_for(0))["estado"] != LENT
    storage.close()


def test_journal_ignores_and_repairs_a_torn_last_line(catalog_file: Path) -> None:
    a = JournalStorage(catalog_file)
    write(a, "loan_isbn")
    journal = Path(f"{catalog_file}.journal")
    with open(journal, "ab") as out:  # a writer died halfway through a line
        out.write(b'{"book": {"ISBN": "97884')
    b = JournalStorage(catalog_file)
    assert b.read().get(DON_QUIJOTE)["estado"] == LENT
    assert write(b, "return_isbn")["code"] == Code.OK
    c = JournalStorage(catalog_file)
    assert c.read().get(DON_QUIJOTE)["estado"] != LENT
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())


def test_journal_flush_makes_the_catalog_file_current(catalog_file: Path) -> None:
    a = JournalStorage(catalog_file)
    write(a, "loan_isbn", borrower="Guillermo")
    assert on_disk(catalog_file).get(DON_QUIJOTE)["estado"] != LENT
    a.flush()
    assert on_disk(catalog_file).get(DON_QUIJOTE)["prestatario"] == "Guillermo"
    assert json.loads(catalog_file.read_text())["libros"]  # still the class's shape


def test_json_engine_voids_the_intent_of_a_writer_that_died_before_its_rename(
        catalog_file: Path) -> None:
    a = JsonStorage(catalog_file)
    reply = write(a, "loan_isbn", rid="ok-1")
    requests = Path(f"{catalog_file}.requests")
    dead = {"book": dict(reply["book"], ISBN="9780140449266", prestatario="Ghost"),
            "id": "dead-1", "fp": "x", "reply": {"code": "OK"}}
    with open(requests, "ab") as out:  # intent written, then the process died: no rename
        out.write(json.dumps(dead).encode() + b"\n")
    b = JsonStorage(catalog_file)
    retried = write(b, "loan_isbn", isbn="9780140449266", rid="dead-1")
    assert retried["code"] == Code.OK and retried["book"]["prestatario"] == "Ana"
    assert on_disk(catalog_file).get("9780140449266")["prestatario"] == "Ana"
    assert write(b, "loan_isbn", rid="ok-1") == reply


def _hold_lock(path: str, ready: multiprocessing.synchronize.Event,
               release: multiprocessing.synchronize.Event) -> None:
    with filelock.FileLock(path):
        ready.set()
        release.wait(30)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_held_lock_gives_a_clear_error_not_a_hang(engine: str, catalog_file: Path) -> None:
    storage = open_storage(engine, catalog_file, lock_timeout=0.3)
    mp = multiprocessing.get_context("spawn")
    ready, release = mp.Event(), mp.Event()
    holder = mp.Process(target=_hold_lock, args=(f"{catalog_file}.lock", ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(StorageError, match="held by another process"):
            write(storage, "loan_isbn")
        assert storage.read().get(DON_QUIJOTE)["estado"] != LENT  # reads do not need it
    finally:
        release.set()
        holder.join(30)
    assert write(storage, "loan_isbn")["code"] == Code.OK


def test_startup_sweeps_temporary_files_left_by_a_crash(catalog_file: Path) -> None:
    leftover = catalog_file.with_name(f"{catalog_file.name}.tmp-123-abcd")
    leftover.write_bytes(b'{"libros": [')
    assert prepare_files(catalog_file) == [leftover]
    assert not leftover.exists()


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        open_storage("journal", tmp_path / "nope.json")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failed_write_changes_nothing(engine: str, catalog_file: Path) -> None:
    storage = open_storage(engine, catalog_file)
    before = catalog_file.read_bytes()
    # No file may grow past 16 bytes: every append and every rewrite fails with EFBIG, as on a
    # full disk (RLIMIT_FSIZE binds root too, unlike file permissions).
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, limits[1]))
    try:
        with pytest.raises(StorageError):
            write(storage, "loan_isbn", rid="fails-1")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert catalog_file.read_bytes() == before
    assert storage.read().get(DON_QUIJOTE)["estado"] != LENT
    assert not list(catalog_file.parent.glob("*.tmp-*"))
    other = open_storage(engine, catalog_file)
    assert other.read().get(DON_QUIJOTE)["estado"] != LENT
    retried = write(other, "loan_isbn", rid="fails-1")  # not remembered as applied
    assert retried["code"] == Code.OK and retried["book"]["estado"] == LENT


def test_a_compaction_overtaken_by_another_process_is_dropped(tmp_path: Path) -> None:
    """a's snapshot is cut, then b writes and compacts on its own (as at shutdown): a's older
    snapshot must not replace b's newer one."""
    path = write_catalog(tmp_path / "race.json", 3)
    a = JournalStorage(path, compact_min=4)
    b = JournalStorage(path, compact_min=4)
    for n in range(3):
        write(a, "loan_isbn", isbn_for(n))
    write(a, "return_isbn", isbn_for(0))  # a's 4th change cuts a snapshot
    assert a.compacting
    write(b, "loan_isbn", isbn_for(0), borrower="late")  # after a's cut
    b.flush()  # b compacts now, without waiting for a
    wait_until(lambda: (a.idle(), not a.compacting)[1], message="a's compaction to end")
    fresh = JournalStorage(path)
    assert fresh.read().get(isbn_for(0))["prestatario"] == "late"
    assert on_disk(path).get(isbn_for(0))["prestatario"] == "late"
    for storage in (a, b, fresh):
        storage.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_private_catalog_stays_private(engine: str, tmp_path: Path) -> None:
    """Borrowers' names are in the catalog: its lock, journal and rewritten snapshots keep
    its permissions, whatever the umask."""
    db = tmp_path / "private.json"
    shutil.copy(SHIPPED_CATALOG, db)
    db.chmod(0o600)
    old = os.umask(0o022)
    try:
        storage = open_storage(engine, db)
        write(storage, "loan_isbn")
        storage.flush()
        storage.close()
    finally:
        os.umask(old)
    made = [p for p in tmp_path.iterdir() if p.is_file()]
    assert len(made) >= 3  # the catalog, its lock, and a journal
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


@pytest.mark.parametrize("engine", ENGINES)
def test_a_catalog_reached_through_a_link_is_one_catalog(engine: str, tmp_path: Path) -> None:
    real = tmp_path / "data" / "catalog.json"
    real.parent.mkdir()
    shutil.copy(SHIPPED_CATALOG, real)
    link = tmp_path / "DB.json"
    link.symlink_to(real)
    by_link, by_name = open_storage(engine, link), open_storage(engine, real)
    try:
        assert write(by_link, "loan_isbn", borrower="Ana")["code"] == "OK"
        # the other name sees the loan at once: one lock, one journal
        assert write(by_name, "loan_isbn", borrower="Eva")["code"] == "UNAVAILABLE"
        by_link.flush()
    finally:
        by_link.close()
        by_name.close()
    assert link.is_symlink() and link.resolve() == real
    assert Catalog.from_bytes(real.read_bytes()).get(DON_QUIJOTE)["prestatario"] == "Ana"


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    storage = open_storage("journal", db)
    assert write(storage, "loan_isbn", borrower="Ana")["code"] == "OK"
    storage.close()
    journal = Path(f"{db}.journal")
    journal.write_bytes(journal.read_bytes().rstrip(b"\n"))  # a copy that dropped it
    again = open_storage("journal", db)
    try:
        assert again.read().get(DON_QUIJOTE)["prestatario"] == "Ana"
        assert write(again, "return_isbn")["code"] == "OK"  # and the file goes on from there
    finally:
        again.close()
    last = journal.read_bytes().splitlines()[-1]
    assert json.loads(last)["book"]["ISBN"] == DON_QUIJOTE


def test_a_damaged_journal_names_the_byte_of_the_bad_line(tmp_path: Path) -> None:
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    storage = open_storage("journal", db)
    write(storage, "loan_isbn", borrower="Ana")
    write(storage, "return_isbn")
    storage.close()
    journal = Path(f"{db}.journal")
    lines = journal.read_bytes().split(b"\n")
    offset = len(lines[0]) + 1 + len(lines[1]) + 1
    lines[2] = b"{garbage"
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(StorageError, match=f"at byte {offset} "):
        open_storage("journal", db)


def test_the_json_engine_sees_a_rewrite_in_place_by_another_program(tmp_path: Path) -> None:
    """The class's design: any program takes the FileLock and rewrites the JSON file. One that
    rewrites it in place (same inode) must be noticed, not overwritten."""
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    storage = open_storage("json", db)
    try:
        assert storage.read().get(DON_QUIJOTE)["estado"] != LENT
        with filelock.FileLock(f"{db}.lock", timeout=5):
            document = json.loads(db.read_text(encoding="utf-8"))
            book = next(b for b in document["libros"] if b["ISBN"] == DON_QUIJOTE)
            book.update(estado=LENT, prestatario="Otro programa", fecha_prestamo="2026-02-20",
                        fecha_devolucion="2026-02-27")
            with open(db, "r+", encoding="utf-8") as file:  # in place: the inode stays
                file.write(json.dumps(document, ensure_ascii=False, indent=2))
                file.truncate()
        assert write(storage, "loan_isbn", borrower="Ana")["code"] == "UNAVAILABLE"
        assert storage.read().get(DON_QUIJOTE)["prestatario"] == "Otro programa"
    finally:
        storage.close()
    assert Catalog.from_bytes(db.read_bytes()).get(DON_QUIJOTE)["prestatario"] == \
        "Otro programa"


def test_the_json_engine_refuses_a_journal_it_would_ignore(tmp_path: Path) -> None:
    """A loan acknowledged on the journal engine, the server killed (no flush), then started
    with --storage json: the loan must not vanish, nor the book be lent again."""
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    journal = open_storage("journal", db)
    assert write(journal, "loan_isbn", borrower="Ana")["code"] == "OK"
    journal.close()  # as after SIGKILL: the catalog file does not have the loan yet
    with pytest.raises(StorageError, match="holds 1 change"):
        open_storage("json", db)
    again = open_storage("journal", db)  # the way out the message gives
    assert again.read().get(DON_QUIJOTE)["prestatario"] == "Ana"
    again.flush()
    again.close()
    json_engine = open_storage("json", db)
    try:
        assert write(json_engine, "loan_isbn", borrower="Eva")["code"] == "UNAVAILABLE"
    finally:
        json_engine.close()


def test_a_journal_is_refused_over_a_catalog_it_does_not_extend(tmp_path: Path) -> None:
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    backup = db.read_bytes()
    storage = open_storage("journal", db)
    write(storage, "loan_isbn", borrower="Ana")
    storage.flush()  # the snapshot now has Ana's loan; the journal extends it
    write(storage, "return_isbn")
    storage.close()
    db.write_bytes(backup)  # restored from last week's backup
    with pytest.raises(StorageError, match="does not belong"):
        open_storage("journal", db)
    assert db.read_bytes() == backup  # nothing was replayed over it


def test_a_compaction_that_died_after_the_snapshot_leaves_a_journal_that_is_accepted(
        tmp_path: Path) -> None:
    """Between putting the new snapshot in place and the journal's next generation, the old
    journal names the new snapshot, so a restart replays it (harmlessly) instead of
    refusing it."""
    from libsrv.storage.journal import NEXT_SNAPSHOT, Compaction, snapshot_identity

    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    storage = JournalStorage(db)
    write(storage, "loan_isbn", borrower="Ana")
    with storage._lock:  # what _finish_compaction does, stopping after the snapshot
        job = Compaction(db, storage._log, storage._catalog.snapshot(), storage._catalog.shape,
                         [], storage.seq)
        job.run()
        storage._log.append({NEXT_SNAPSHOT: job.identity})
        job.install_snapshot()
        job.discard()
    storage.close()
    assert snapshot_identity(db.read_bytes()) == job.identity
    again = open_storage("journal", db)
    try:
        assert again.read().get(DON_QUIJOTE)["prestatario"] == "Ana"
    finally:
        again.close()


def test_ids_are_remembered_for_their_time_even_past_the_count(tmp_path: Path) -> None:
    from libsrv.storage.base import AppliedRequests

    applied = AppliedRequests(window=3, seconds=60)
    now = time.time()
    for n in range(10):  # the first five are old, the rest recent
        applied.remember(f"id-{n}", "fp", {"code": "OK"}, at=now - 120 if n < 5 else now)
    kept = [rid for rid, _ in applied.snapshot()]
    assert kept == [f"id-{n}" for n in range(5, 10)]  # beyond the count, for their time


def test_a_shorter_window_after_a_restart_forgets_no_earlier_promise() -> None:
    """Ids decided 17 s ago under a 60 s window, carried through the journal's lines into a
    process that remembers for 1 s, and on into one that remembers for 60 s again: kept for
    the window they were promised under."""
    import json

    from libsrv.storage.base import AppliedRequests

    def restart(before: AppliedRequests, seconds: float) -> AppliedRequests:
        after = AppliedRequests(window=3, seconds=seconds)
        for line in AppliedRequests.lines(before.snapshot()):
            after.remember_record(json.loads(line))
        return after

    promised = AppliedRequests(window=3, seconds=60)
    for n in range(5):
        promised.remember(f"old-{n}", "fp", {"code": "OK"}, at=time.time() - 17)
    short = restart(promised, 1)
    for n in range(10):  # new writes push the count past the window
        short.remember(f"new-{n}", "fp", {"code": "OK"}, at=time.time() - 5)
    assert {f"old-{n}" for n in range(5)} <= {rid for rid, _ in short.snapshot()}
    back = restart(short, 60)
    assert {f"old-{n}" for n in range(5)} <= {rid for rid, _ in back.snapshot()}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_refused_write_is_remembered_by_its_id(engine: str, tmp_path: Path) -> None:
    """docs/protocol.md: an id names one write. A retry of a refused write gets the same
    refusal; the id reused for another write is refused, also by another process and after a
    restart."""
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    first = open_storage(engine, db)
    assert write(first, "return_isbn", rid="r-1")["code"] == "NOT_LOANED"
    assert write(first, "loan_isbn", rid="l-1")["code"] == "OK"
    assert write(first, "return_isbn", rid="r-1")["code"] == "NOT_LOANED"  # the same answer
    second = open_storage(engine, db)
    try:
        with pytest.raises(IdReused):
            write(second, "loan_isbn", isbn=isbn_for(0), rid="r-1")
    finally:
        first.close()
        second.close()
    again = open_storage(engine, db)
    try:
        assert write(again, "return_isbn", rid="r-1")["code"] == "NOT_LOANED"
    finally:
        again.close()


def test_the_journal_engine_takes_a_rewrite_by_another_program(tmp_path: Path) -> None:
    """Another program takes the FileLock and rewrites the catalog (in place) from the file as
    it finds it, which lacks the journal's newest loan: both workers must keep that loan and
    take the other program's, and the file ends with both."""
    other_book = "9788497592208"
    db = tmp_path / "catalog.json"
    shutil.copy(SHIPPED_CATALOG, db)
    first, second = open_storage("journal", db), open_storage("journal", db)
    try:
        assert write(first, "loan_isbn", borrower="Ana")["code"] == "OK"  # in the journal only
        with filelock.FileLock(f"{db}.lock", timeout=5):
            document = json.loads(db.read_text(encoding="utf-8"))
            book = next(b for b in document["libros"] if b["ISBN"] == other_book)
            book.update(estado=LENT, prestatario="Otro programa", fecha_prestamo="2026-02-20",
                        fecha_devolucion="2026-02-27")
            with open(db, "r+", encoding="utf-8") as file:
                file.write(json.dumps(document, ensure_ascii=False, indent=2))
                file.truncate()
        assert write(second, "loan_isbn", isbn=other_book, borrower="Eva")["code"] == \
            "UNAVAILABLE"
        seen = first.read()
        assert seen.get(other_book)["prestatario"] == "Otro programa"
        assert seen.get(DON_QUIJOTE)["prestatario"] == "Ana"
        first.flush()
    finally:
        first.close()
        second.close()
    final = Catalog.from_bytes(db.read_bytes())
    assert final.get(DON_QUIJOTE)["prestatario"] == "Ana"
    assert final.get(other_book)["prestatario"] == "Otro programa"
    again = open_storage("journal", db)  # and a restart accepts what is there
    again.close()
