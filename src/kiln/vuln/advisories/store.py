"""The advisory store: kiln's append-only event log in the vulnerability database.

The table ``advisory_events`` (migration 0003) lives in the database ``KILN_DB`` names
(SQLite by default, PostgreSQL in production), beside the feeds. The API appends and
reads; nothing updates or deletes a row. Each append is one transaction of one INSERT,
so two processes appending to one SQLite file wait for each other (SQLite's busy
timeout) instead of interleaving, and the row ids give the one order of events.

A row is checked again when read: a row another program wrote with an unknown kind, data
that is not JSON or fields the kind does not allow is an ``EnvironmentProblem`` naming
the row, never a traceback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from kiln.errors import EnvironmentProblem, InputError
from kiln.jsonlimits import parse_json
from kiln.vuln.advisories.events import (
    MAX_DATA_BYTES,
    AdvisoryEvent,
    canonical_data,
    format_time,
    parse_time,
)
from kiln.vuln.advisories.state import AdvisoryState, derive_states
from kiln.vuln.db.read import as_db_url, default_db_url
from kiln.vuln.db.schema import advisory_events
from kiln.vuln.db.store import VulnDB, engine_safe

_TABLE = advisory_events
#: extra attempts when SQLite says another writer holds the lock past its busy timeout
_LOCK_RETRIES = 6
_LOCKED = re.compile(r"database is locked|database table is locked|SQLITE_BUSY", re.IGNORECASE)


class AdvisoryStore:
    """The advisory event log of one database. Use ``AdvisoryStore.open``."""

    def __init__(self, db: VulnDB, url: str) -> None:
        self._db = db
        self.url = url

    @classmethod
    def open(cls, url: str | None = None) -> AdvisoryStore:
        """Open (creating and migrating) the database at ``url`` (a path or an SQLAlchemy
        URL); ``None`` is ``$KILN_DB`` or the default database in kiln's cache."""
        resolved = as_db_url(url) if url else default_db_url()
        # VulnDB.open serialises the migration of a new database across processes.
        return cls(VulnDB.open(resolved), resolved)

    @property
    def engine(self) -> Engine:
        return self._db.engine

    def close(self) -> None:
        """Release the database connections."""
        self._db.close()

    def __enter__(self) -> AdvisoryStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _database(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise EnvironmentProblem(
                f"the advisory store in {engine_safe(self.url)} failed while {doing}: "
                f"{str(exc).splitlines()[0]}",
                hint="another kiln process may hold the database; check $KILN_DB",
            ) from exc

    # --- writing ----------------------------------------------------------------------

    def append(self, event: AdvisoryEvent) -> int:
        """Append ``event`` in one transaction; its id (the order of events) is returned.

        An event without a time is stamped with the time of the append (UTC).
        """
        if not isinstance(event, AdvisoryEvent):
            raise InputError(f"not an AdvisoryEvent: {type(event).__name__}")
        when = event.time or datetime.now(UTC)
        row = {
            "image": event.image,
            "vuln_id": event.vuln_id,
            "package": event.package,
            "kind": event.kind.value,
            "time": format_time(when),
            "data": canonical_data(event.data),
        }
        doing = f"appending {event.kind.value} for {event.image} {event.vuln_id}"
        with self._database(doing):
            key = self._insert(row)
        if key is None or key[0] is None:
            raise EnvironmentProblem("the advisory store returned no id for the appended event")
        return int(key[0])

    def _insert(self, row: dict[str, Any]) -> Any:
        """INSERT ``row`` in its own transaction; a lock held by another writer past
        SQLite's busy timeout is waited out a few more times (the failed transaction
        wrote nothing, so trying again cannot append twice)."""
        for attempt in range(_LOCK_RETRIES + 1):
            try:
                with self.engine.begin() as conn:
                    return conn.execute(insert(_TABLE).values(**row)).inserted_primary_key
            except OperationalError as exc:
                if attempt == _LOCK_RETRIES or not _LOCKED.search(str(exc)):
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- reading ----------------------------------------------------------------------

    def history(self, image: str, vuln_id: str) -> list[AdvisoryEvent]:
        """Every event about ``vuln_id`` in ``image``, oldest first."""
        stmt = (
            select(_TABLE)
            .where(_TABLE.c.image == image, _TABLE.c.vuln_id == vuln_id)
            .order_by(_TABLE.c.id)
        )
        return self._read(stmt, f"reading the history of {image} {vuln_id}")

    def events(self, image: str | None = None) -> list[AdvisoryEvent]:
        """Every event (of one image), oldest first."""
        stmt = select(_TABLE).order_by(_TABLE.c.id)
        if image is not None:
            stmt = stmt.where(_TABLE.c.image == image)
        return self._read(stmt, f"reading the events of {image or 'every image'}")

    def state(self, image: str | None = None) -> list[AdvisoryState]:
        """The current state of each (image, vulnerability) (of one image), sorted."""
        return derive_states(self.events(image))

    def images(self) -> list[str]:
        """The images the store has events about, sorted."""
        stmt = select(_TABLE.c.image).distinct().order_by(_TABLE.c.image)
        with self._database("listing images"), self.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(stmt)]

    def _read(self, stmt: Any, doing: str) -> list[AdvisoryEvent]:
        with self._database(doing), self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        return [self._event(row) for row in rows]

    def _event(self, row: Any) -> AdvisoryEvent:
        where = f"{engine_safe(self.url)}: advisory_events row {row.id}"
        try:
            data = parse_json(
                row.data,
                where=where,
                max_bytes=MAX_DATA_BYTES + 1024,
                what="the event data",
                error=EnvironmentProblem,
            )
            return AdvisoryEvent(
                image=row.image,
                vuln_id=row.vuln_id,
                kind=row.kind,
                package=row.package,
                data=data,  # not an object: AdvisoryEvent says so
                time=parse_time(str(row.time), where=where),
                id=int(row.id),
            )
        except InputError as exc:
            raise EnvironmentProblem(
                f"{where} is not a valid advisory event: {exc}",
                hint="the row was not written by kiln's advisory store, or was edited",
            ) from exc
