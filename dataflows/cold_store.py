"""Cold state: pieces of an agent's recovery state written once, beside Bytewax's store.

Each Bytewax epoch end snapshots every agent the epoch touched, and Bytewax writes each
snapshot whole. Most of an agent's bytes do not change from one epoch to the next: the dedup
ids of the last day (:mod:`dataflows.dedup`) and the open decisions of buckets no signal
touched (:mod:`dataflows.open_decisions`). Written whole, a process at 20k events/s stalled
about 0.3 s a minute in for 35 MB, and the write grew with uptime.

A :class:`ColdStore` (one SQLite file per flow process, in its recovery directory) keeps
such pieces: a piece is pickled once, :meth:`ColdStore.put` gives it a reference (an int),
and the agent's snapshot carries the int. A writer thread inserts the pieces as
they come (in one open transaction; SQLite works without the GIL), and
:meth:`ColdStore.flush`, at the end of every shard snapshot, inserts the rest and commits,
so a snapshot Bytewax commits never refers to a piece that is not on disk, and the epoch
end waits only for what came last.

Deletion waits. A piece the agent no longer holds (its bucket expired or changed) is
*released*, and deleted (by the writer thread, committed with the next flush) once
``ROUNDS`` more epochs have ended and ``grace`` seconds have passed: by then every epoch
that Bytewax could resume from was snapshotted after the release, so none refers to it.
Epoch ends are counted by the shards themselves (a shard is snapshotted at most once per
epoch, so the largest count any shard reports never runs ahead of the epochs that ended; it
can only lag, which delays deletion). A crash loses the releases not yet due and leaves the
pieces of epochs that never committed; so the first flush after a start (once Bytewax has
restored every shard, which it does before the first epoch) deletes every older piece the
restored state did not read.

The store is process-wide (:func:`activate`); the state classes reach it through
:func:`freeze`, :func:`thaw` and :func:`drop`, which keep the bytes inline when no store is
active (no recovery, tests, benchmarks), so the same state pickles with or without one.

>>> import pickle, tempfile
>>> from pathlib import Path
>>> store = ColdStore(Path(tempfile.mkdtemp()) / "cold-0.db", grace=0.0)
>>> store.open(); activate(store)
>>> ref = freeze(pickle.dumps([1, 2, 3]))
>>> isinstance(ref, int), pickle.loads(thaw(ref))
(True, [1, 2, 3])
>>> store.flush(1); store.stats()["pieces"]
1
>>> drop(ref); store.flush(2); store.collect(); store.stats()["pieces"]  # released ...
1
>>> store.flush(1 + ROUNDS); store.collect(); store.stats()["pieces"]  # ... and due
0
>>> activate(None); store.close()
>>> freeze(b"inline")        # no store: the bytes themselves
b'inline'
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

#: a piece of state in a snapshot: its bytes, or its reference in the active store
Frozen = bytes | int

log = logging.getLogger("rewardflow.dataflow")

_ACTIVE: ColdStore | None = None
#: epoch ends between a piece's release and its deletion
ROUNDS = 3
#: the writer thread writes what is staged once this much is, or after this long
WRITE_AHEAD_BYTES = 1 << 20
WRITE_AHEAD_SECONDS = 0.5


class ColdStoreError(RuntimeError):
    """The cold store cannot serve a snapshot: a piece it does not have, a store that is
    not open, or a write that failed (the flow stops before Bytewax commits the epoch)."""


class ColdStore:
    """Pickled pieces of agent state by reference, in one SQLite file.

    Parameters
    ----------
    path
        The SQLite file (created on :meth:`open`).
    grace
        Seconds between a piece's release and its deletion (at least; ``ROUNDS`` epoch
        ends must pass too).
    """

    def __init__(self, path: Path, grace: float) -> None:
        self.path = Path(path)
        self.grace = grace
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._next = 1
        #: ref -> bytes put and not yet handed to SQLite (guarded by ``_lock``)
        self._staged: dict[int, bytes] = {}
        self._staged_bytes = 0
        #: the connection, and whether a transaction is open (guarded by ``_db_lock``)
        self._db_lock = threading.Lock()
        self._in_tx = False
        self._checkpoint = False
        #: the writer's checkpointing connection
        self._cp: sqlite3.Connection | None = None
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._closing = False
        self._error: BaseException | None = None
        #: (monotonic time of release, epoch count then, ref), oldest first
        self._released: list[tuple[float, int, int]] = []
        #: epoch ends seen (the largest snapshot count a shard reported)
        self.round = 0
        #: refs below this were written before this start; those the restored state read
        self._boot = 1
        self._restored: set[int] = set()
        self._swept = False
        self.pieces = 0
        self.bytes = 0

    def open(self) -> None:
        """Open (or create) the file, continue its references, start the writer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the process crashing (what Bytewax recovery is
        # for); fsync waits for checkpoints, which the writer runs after each commit
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE IF NOT EXISTS pieces (ref INTEGER PRIMARY KEY, "
                   "data BLOB NOT NULL)")
        top, n, size = db.execute(
            "SELECT max(ref), count(*), coalesce(sum(length(data)), 0) FROM pieces").fetchone()
        self._next = self._boot = (top or 0) + 1
        self.pieces, self.bytes = n, size
        self._swept = n == 0
        self._db = db
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="rewardflow-cold-store",
                                        daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Stop the writer and close the file (what was not flushed is not committed)."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
            self._writer = None
        if self._cp is not None:
            self._cp.close()
            self._cp = None
        with self._db_lock:
            if self._db is not None:
                if self._in_tx:
                    self._db.execute("ROLLBACK")
                    self._in_tx = False
                self._db.close()
                self._db = None

    def put(self, data: bytes) -> int:
        """Stage ``data``; its reference (on disk, committed, after the next :meth:`flush`;
        the writer thread starts writing it before)."""
        with self._lock:
            ref = self._next
            self._next += 1
            self._staged[ref] = data
            self._staged_bytes += len(data)
            if self._staged_bytes >= WRITE_AHEAD_BYTES:
                self._wake.set()
            return ref

    def get(self, ref: int) -> bytes:
        """The bytes of ``ref`` (marking it as read by the restored state)."""
        with self._lock:
            data = self._staged.get(ref)
        if data is not None:
            return data
        with self._db_lock:
            if self._db is None:
                msg = f"cold store {self.path} is not open"
                raise ColdStoreError(msg)
            row = self._db.execute("SELECT data FROM pieces WHERE ref = ?", (ref,)).fetchone()
        if row is None:
            msg = (f"the recovery snapshot refers to piece {ref}, which the cold store "
                   f"{self.path} does not have: the store was deleted or belongs to "
                   f"another recovery store; delete the recovery directory and let the "
                   f"flow rebuild from the topics")
            raise ColdStoreError(msg)
        if ref < self._boot:
            with self._lock:
                self._restored.add(ref)
        return bytes(row[0])

    def release(self, ref: int) -> None:
        """The state no longer holds ``ref``: delete it once no snapshot can refer to it."""
        with self._lock:
            data = self._staged.pop(ref, None)
            if data is None:
                self._released.append((time.monotonic(), self.round, ref))
            else:
                self._staged_bytes -= len(data)

    def _take_staged(self) -> dict[int, bytes]:
        with self._lock:
            items, self._staged, self._staged_bytes = self._staged, {}, 0
        return items

    def _begin(self, db: sqlite3.Connection) -> None:
        """(with ``_db_lock``) Open the transaction the next :meth:`flush` commits, unless
        one is open."""
        if not self._in_tx:
            db.execute("BEGIN")
            self._in_tx = True

    def _insert(self, db: sqlite3.Connection, items: dict[int, bytes]) -> None:
        """(with ``_db_lock``) Insert ``items`` in the open transaction."""
        self._begin(db)
        db.executemany("INSERT OR REPLACE INTO pieces (ref, data) VALUES (?, ?)",
                       items.items())
        self.pieces += len(items)
        self.bytes += sum(map(len, items.values()))

    def _write_loop(self) -> None:
        """Write staged pieces ahead of the epoch end (sqlite releases the GIL while it
        works), and checkpoint the WAL after each commit."""
        while not self._closing:
            self._wake.wait(WRITE_AHEAD_SECONDS)
            self._wake.clear()
            if self._closing:
                return
            try:
                with self._db_lock:  # taken under the lock: a flush commits all it took
                    db = self._db
                    if db is None:
                        return
                    items = self._take_staged()
                    if items:
                        self._insert(db, items)
                    self._collect(db)
                if self._checkpoint:  # on a connection of its own: writers never wait for it
                    self._checkpoint = False
                    if self._cp is None:
                        self._cp = sqlite3.connect(self.path, check_same_thread=False)
                    self._cp.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:  # noqa: BLE001 - reported by the next flush
                log.exception("cold store %s: the writer failed", self.path)
                self._error = exc
                return

    def flush(self, round_: int = 0) -> None:
        """Commit every piece put so far (and the deletions the writer made), in one
        transaction. ``round_``: how many times the calling shard has been snapshotted."""
        if self._error is not None:
            msg = f"cold store {self.path}: the writer failed: {self._error!r}"
            raise ColdStoreError(msg) from self._error
        with self._lock:
            if round_ > self.round:
                self.round = round_
        with self._db_lock:
            items = self._take_staged()
            db = self._db
            if db is None:
                if items:
                    msg = f"cold store {self.path} is not open"
                    raise ColdStoreError(msg)
                return
            if not items and self._swept and not self._in_tx:
                return
            try:
                if items:
                    self._insert(db, items)
                else:
                    self._begin(db)
                if not self._swept:
                    self._sweep(db)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                db.execute("ROLLBACK")
                msg = (f"cold store {self.path}: the epoch's pieces could not be committed "
                       f"({exc}); the flow stops before Bytewax commits a snapshot that "
                       f"refers to them")
                raise ColdStoreError(msg) from exc
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self._in_tx = False
            self._swept = True
            self._checkpoint = True

    def collect(self) -> None:
        """Delete the released pieces that are due (``ROUNDS`` epoch ends and ``grace``
        seconds after their release), in the open transaction that the next :meth:`flush`
        commits. The writer thread calls it, so the epoch end does not wait for deletions."""
        with self._db_lock:
            if self._db is not None:
                self._collect(self._db)

    def _collect(self, db: sqlite3.Connection) -> None:
        """(with ``_db_lock``) :meth:`collect`."""
        with self._lock:
            due, epoch = time.monotonic() - self.grace, self.round - ROUNDS
            rel = self._released
            k = 0
            while k < len(rel) and rel[k][0] <= due and rel[k][1] <= epoch:
                k += 1
            gone = [ref for _, _, ref in rel[:k]]
            del rel[:k]
        if gone:
            self._begin(db)
            self._delete(db, gone)

    def _delete(self, db: sqlite3.Connection, refs: list[int]) -> None:
        ids = (json.dumps(refs),)  # one parameter: a JSON array the statements read
        n, size = db.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM pieces "
                             "WHERE ref IN (SELECT value FROM json_each(?))", ids).fetchone()
        db.execute("DELETE FROM pieces WHERE ref IN (SELECT value FROM json_each(?))", ids)
        self.pieces -= n
        self.bytes -= size

    def _sweep(self, db: sqlite3.Connection) -> None:
        """Delete what was written before this start and the restored state did not read:
        pieces of epochs that never committed, and releases a crash forgot."""
        db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (ref INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM keep")
        db.executemany("INSERT INTO keep (ref) VALUES (?)", ((r,) for r in self._restored))
        db.execute("DELETE FROM pieces WHERE ref < ? AND ref NOT IN (SELECT ref FROM keep)",
                   (self._boot,))
        db.execute("DELETE FROM keep")
        self.pieces, self.bytes = db.execute(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM pieces").fetchone()
        self._restored.clear()

    def stats(self) -> dict[str, Any]:
        """Pieces and bytes on disk (after the last flush), and releases waiting."""
        return {"pieces": self.pieces, "bytes": self.bytes, "waiting": len(self._released)}


def activate(store: ColdStore | None) -> None:
    """Make ``store`` the process's cold store (None: keep pieces inline)."""
    global _ACTIVE
    _ACTIVE = store


def active() -> ColdStore | None:
    return _ACTIVE


def freeze(data: bytes) -> Frozen:
    """``data`` as a snapshot carries it: a reference into the active store, or itself."""
    store = _ACTIVE
    return data if store is None else store.put(data)


def keep(piece: Frozen) -> Frozen:
    """A piece read from a snapshot, as the restored state holds it: inline bytes (a snapshot
    taken without a store, or before the cold store existed) move into the active store."""
    return freeze(piece) if piece.__class__ is bytes and _ACTIVE is not None else piece  # type: ignore[arg-type]


def thaw(piece: Frozen) -> bytes:
    """The bytes of a piece of a snapshot."""
    if piece.__class__ is bytes:
        return piece  # type: ignore[return-value]
    store = _ACTIVE
    if store is None:
        msg = (f"the recovery snapshot refers to cold-store piece {piece!r} but no cold store "
               f"is open (run the flow with its recovery directory)")
        raise ColdStoreError(msg)
    return store.get(piece)  # type: ignore[arg-type]


def drop(piece: Frozen | None) -> None:
    """The state no longer holds ``piece`` (a no-op for inline bytes)."""
    if piece.__class__ is int:
        store = _ACTIVE
        if store is not None:
            store.release(piece)  # type: ignore[arg-type]
