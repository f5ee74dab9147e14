"""The store of a human study: its SQLite database and the rules of writing to it.

``STUDY/study.db`` (WAL, synchronous FULL) holds the study's images (opaque ids and their
source), its raters (the sha256 of each session token), each rater's sequence, and the
judgements: one row each, committed before the server acknowledges it, unique per rater
and position. :class:`Study` opens a study folder that
:func:`deepgen.serve.studies.create_study` wrote; it is safe to share between threads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import DataError, DeepgenError
from ..fileio import read_small_file

ANSWERS = ("real", "fake")
STUDY_FILE = "study.json"
DATABASE = "study.db"

SCHEMA = """
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,   -- 'real', 'noise' or the name of a model of the study
    kind TEXT NOT NULL CHECK (kind IN ('study', 'check', 'tutorial'))
);
CREATE TABLE raters (
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    started TEXT NOT NULL
);
CREATE TABLE assignments (
    rater TEXT NOT NULL REFERENCES raters(id),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (rater, position)
);
CREATE TABLE judgements (
    id INTEGER PRIMARY KEY,
    study TEXT NOT NULL,
    rater TEXT NOT NULL REFERENCES raters(id),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(id),
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'fake')),
    response_ms REAL NOT NULL,
    timestamp TEXT NOT NULL,
    UNIQUE (rater, position)
);
"""


class Refused(DeepgenError):
    """A request the study store will not act on; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Item:
    """One position of a rater's sequence: the image to show and whether it is tutorial."""

    position: int
    image: str
    tutorial: bool


def connect(path: Path) -> sqlite3.Connection:
    """A connection to a study database: autocommit (transactions are explicit), WAL,
    synchronous FULL (a committed judgement survives a killed server), foreign keys on."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    return con


_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(study: Path) -> threading.Lock:
    """The lock that writers of one study in this process take in turn."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(study.resolve(), threading.Lock())


def is_study(path: Path) -> bool:
    """Whether ``path`` is a study folder (it holds study.json and study.db)."""
    return (path / STUDY_FILE).is_file() and (path / DATABASE).is_file()


class Study:
    """An existing study folder: its description and the store of its judgements.

    Every method opens its own connection, so one Study serves many threads.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not is_study(self.path):
            raise DataError(f"{self.path} is not a deepgen study (no {STUDY_FILE} and {DATABASE})")
        text = read_small_file(self.path / STUDY_FILE, 1 << 20, DataError, str(self.path))
        try:
            self.meta = json.loads(text)
        except json.JSONDecodeError:
            raise DataError(f"{self.path / STUDY_FILE} is not JSON") from None
        self.name = self.meta["name"]
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the store (opened once per thread and kept)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = connect(self.path / DATABASE)
            with self._opened_lock:
                self._opened.append(con)
        return con

    @contextmanager
    def _writing(self):
        """A write transaction, one at a time in this process (so writers queue on a lock
        instead of SQLite's sleeping busy handler); committed on exit, rolled back on error."""
        con = self.connection()
        with _write_lock(self.path):
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this Study opened, in any thread."""
        with self._opened_lock:
            for con in self._opened:
                con.close()
            self._opened.clear()
        self._local = threading.local()

    def image_path(self, image: str) -> Path:
        """The PNG of a server-issued image id.

        Raises: Refused (404) for an id that is not one of this study's images."""
        con = self.connection()
        row = con.execute("SELECT 1 FROM images WHERE id = ?", (image,)).fetchone()
        if row is None:
            raise Refused(404, "no such image in this study")
        return self.path / "images" / f"{image}.png"

    def sequence(self, number: int, con: sqlite3.Connection) -> list[str]:
        """Rater ``number``'s image ids in order: the tutorial, then the study images shuffled
        by (seed, number) with the checks at seeded positions."""
        by_kind = {"study": [], "check": [], "tutorial": []}
        for image, kind in con.execute("SELECT id, kind FROM images ORDER BY rowid"):
            by_kind[kind].append(image)
        rng = np.random.default_rng([self.meta["seed"], number])
        shown = [by_kind["study"][i] for i in rng.permutation(len(by_kind["study"]))]
        for image in (by_kind["check"][i] for i in rng.permutation(len(by_kind["check"]))):
            shown.insert(int(rng.integers(0, len(shown) + 1)), image)
        return by_kind["tutorial"] + shown

    def start_rater(self) -> tuple[str, str]:
        """A new rater: (rater id, session token). Only the token's sha256 is stored."""
        rater, token = secrets.token_hex(8), secrets.token_urlsafe(24)
        with self._writing() as con:
            (number,) = con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM raters").fetchone()
            con.execute(
                "INSERT INTO raters VALUES (?, ?, ?, ?)",
                (rater, number, _sha256(token), datetime.now(UTC).isoformat()),
            )
            con.executemany(
                "INSERT INTO assignments VALUES (?, ?, ?)",
                [(rater, i, image) for i, image in enumerate(self.sequence(number, con))],
            )
        return rater, token

    def _check_token(self, con: sqlite3.Connection, rater: str, token: str) -> None:
        row = con.execute("SELECT token_sha256 FROM raters WHERE id = ?", (rater,)).fetchone()
        if row is None or not hmac.compare_digest(row[0], _sha256(token)):
            raise Refused(403, "unknown rater or wrong session token")

    def next_item(self, rater: str, token: str) -> tuple[Item | None, int, int]:
        """(the first unanswered item or None when done, answered count, sequence length).

        Raises: Refused (403) for an unknown rater or a wrong token."""
        con = self.connection()
        self._check_token(con, rater, token)
        total = con.execute(
            "SELECT COUNT(*) FROM assignments WHERE rater = ?", (rater,)
        ).fetchone()[0]
        row = con.execute(
            "SELECT a.position, a.image, i.kind FROM assignments a JOIN images i "
            "ON i.id = a.image WHERE a.rater = ? AND a.position NOT IN "
            "(SELECT position FROM judgements WHERE rater = ?) ORDER BY a.position LIMIT 1",
            (rater, rater),
        ).fetchone()
        done = total if row is None else row[0]
        item = None if row is None else Item(row[0], row[1], row[2] == "tutorial")
        return item, done, total

    def record(
        self, rater: str, token: str, position: int, image: str, answer: str, response_ms: float
    ) -> str | None:
        """Store one judgement, committed before returning; returns the right answer for a
        tutorial image (the feedback to show), else None. Sending the same judgement again
        stores nothing new.

        Raises:
            Refused: 403 a wrong token; 422 an answer not real/fake or a bad response time;
                404 an image that is not at that position of the rater's sequence; 409 an
                answered position given another answer.
        """
        if answer not in ANSWERS:
            raise Refused(422, f"answer must be one of {', '.join(ANSWERS)}")
        if not (0 <= response_ms < 86_400_000):
            raise Refused(422, "response_ms must be in [0, 86,400,000)")
        with self._writing() as con:
            self._check_token(con, rater, token)
            row = con.execute(
                "SELECT i.source, i.kind FROM assignments a JOIN images i ON i.id = a.image "
                "WHERE a.rater = ? AND a.position = ? AND a.image = ?",
                (rater, position, image),
            ).fetchone()
            if row is None:
                raise Refused(404, "that image is not at that position of this rater's sequence")
            source, kind = row
            earlier = con.execute(
                "SELECT answer FROM judgements WHERE rater = ? AND position = ?",
                (rater, position),
            ).fetchone()
            if earlier is not None and earlier[0] != answer:
                raise Refused(409, "this image was already judged, with the other answer")
            if earlier is None:
                con.execute(
                    "INSERT INTO judgements (study, rater, position, image, source, kind, answer,"
                    " response_ms, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.name,
                        rater,
                        position,
                        image,
                        source,
                        kind,
                        answer,
                        float(response_ms),
                        datetime.now(UTC).isoformat(timespec="milliseconds"),
                    ),
                )
        return ("real" if source == "real" else "fake") if kind == "tutorial" else None

    def judgements(self) -> list[dict]:
        """Every stored judgement, in the order stored."""
        con = self.connection()
        cursor = con.execute("SELECT * FROM judgements ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
