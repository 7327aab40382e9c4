"""Schema migrations without Alembic: numbered steps recorded in ``schema_version``.

Run before the web process starts: ``python -m sample_app.migrate``. It is
idempotent (steps already recorded are skipped), safe to run concurrently
on Postgres (an advisory lock serializes runners), and prints one JSON line
``{"schema_version": N, "applied": [...], "changed": bool}``.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, Sequence

from sqlalchemy import Connection, Engine, func, select, text

from .db import Base, Job, SchemaVersion, get_engine
from .settings import get_settings

# Any number that is ours alone: the advisory lock key of this application.
ADVISORY_LOCK_KEY = 0x5A4D_0001


def _v1_jobs(conn: Connection) -> None:
    Base.metadata.create_all(conn, tables=[Job.__table__])


# (version, description, step). Append only; never edit a released step.
MIGRATIONS: Sequence[tuple[int, str, Callable[[Connection], None]]] = (
    (1, "jobs table", _v1_jobs),
)
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The highest applied version (0 on an empty database)."""
    if not conn.dialect.has_table(conn, SchemaVersion.__tablename__):
        return 0
    return conn.execute(select(func.coalesce(func.max(SchemaVersion.version), 0))).scalar_one()


def migrate(engine: Engine) -> list[int]:
    """Apply the missing steps in one transaction; return the versions applied."""
    applied: list[int] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        Base.metadata.create_all(conn, tables=[SchemaVersion.__table__])
        version = current_version(conn)
        for number, description, step in MIGRATIONS:
            if number > version:
                step(conn)
                conn.execute(SchemaVersion.__table__.insert().values(version=number, description=description))
                applied.append(number)
    return applied


def main(argv: Sequence[str] = ()) -> int:
    engine = get_engine(get_settings().database_url)
    applied = migrate(engine)
    with engine.connect() as conn:
        version = current_version(conn)
    print(json.dumps({"schema_version": version, "applied": applied, "changed": bool(applied)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
