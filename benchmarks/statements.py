"""Run the hub's CLI counting the SQL statements it sends (a script, not a module of the hub).

``python benchmarks/statements.py serve …`` is ``hub serve …`` with a listener on every
SQLAlchemy engine's ``before_cursor_execute``: each statement sent to the database is counted
under a short key (``INSERT records``, ``SELECT documents``, ``SELECT pg_advisory_xact_lock``…),
how many distinct texts each key had (each a statement asyncpg prepares: a
server round trip and a plan), and how many of them went as a DBAPI ``executemany`` (asyncpg: the statement executed once per
row on the server, in one round trip) with how many rows. On SIGUSR1 the counts so far are written, as JSON, to the file named by
``BENCH_STATEMENTS_FILE`` (``benchmarks.pipeline_cpu`` takes one snapshot when the hub starts
consuming and one when every package arrived, and reads the difference). Run as a script so
that the hub it imports is the one on ``PYTHONPATH`` (the code tree being measured).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections import Counter

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # this folder's modules must not shadow anything the hub imports

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

STATEMENTS: Counter = Counter()
MANY: Counter = Counter()  # of those, sent as executemany
ROWS: Counter = Counter()  # rows of the executemany ones
TEXTS: dict[str, set[int]] = {}  # distinct statement texts per key (hashes): what asyncpg had to prepare

_KEY = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(INSERT INTO|UPDATE|DELETE FROM|SELECT|BEGIN|COMMIT|ROLLBACK)\s*(\S*)",
                  re.IGNORECASE | re.DOTALL)
_FROM = re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE)


def key(statement: str) -> str:
    """``INSERT records``, ``UPDATE outbox``, ``SELECT documents`` (its first FROM), ``SELECT pg_advisory_xact_lock``."""
    m = _KEY.match(statement)
    if m is None:
        return statement.split(None, 1)[0].upper() if statement.strip() else "?"
    verb, what = m.group(1).upper().split()[0], m.group(2).strip('"(')
    if verb == "SELECT":
        f = _FROM.search(statement)
        what = f.group(1) if f else re.sub(r"\(.*", "", what)
    return f"{verb} {what}".strip()


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
    k = key(statement)
    STATEMENTS[k] += 1
    TEXTS.setdefault(k, set()).add(hash(statement))
    if executemany:
        MANY[k] += 1
        ROWS[k] += len(parameters)


def _dump(*_args) -> None:
    path = os.environ.get("BENCH_STATEMENTS_FILE")
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump({"statements": dict(STATEMENTS), "many": dict(MANY), "rows": dict(ROWS),
                       "texts": {k: len(v) for k, v in TEXTS.items()}}, f)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _dump)
    from hub.cli import main

    sys.exit(main())
