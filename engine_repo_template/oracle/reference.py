"""The expected side of the oracle: run a case through Python's sqlite3 module and print what the sqlite3 shell
prints in its default list mode (`|` between columns, NULL as nothing, no header).

Statements run one at a time, split the way the shell splits them (sqlite3.complete_statement), in autocommit
mode so BEGIN/COMMIT/ROLLBACK in a case mean exactly what they mean in the shell. A failing statement prints one
line `Error: <message>` where its rows would have been, after any rows it produced, and the script goes on, as
the shell does without -bail.
"""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path

REOPEN = re.compile(r"^[ \t]*--[ \t]*@reopen[ \t]*$", re.MULTILINE)


class BrokenCase(Exception):
    """The case itself is unusable (the harness, not the engine, is at fault)."""


def sessions(sql: str) -> list[str]:
    """A case is one session, or several separated by `-- @reopen` lines (close and reopen the same file)."""
    return REOPEN.split(sql)


def split_statements(sql: str) -> list[str]:
    """Cut a script at each `;` that completes a statement; a trailing piece without `;` runs too, as at EOF."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start : i + 1]):
            out.append(sql[start : i + 1])
            start = i + 1
    tail = sql[start:]
    if tail.strip():
        out.append(tail)
    return out


def format_real(v: float) -> str:
    """SQLite's `%!.15g`: 15 significant digits, always a decimal point, two-digit exponent, Inf, 0.0 for -0.0."""
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0.0"
    s = f"{v:.15g}"
    mantissa, _, exponent = s.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent}" if exponent else mantissa


def format_value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return format_real(v)
    if isinstance(v, bytes):
        # The shell prints a blob as a C string: up to the first NUL byte.
        return v.split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(v)


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def run_statement(conn: sqlite3.Connection, stmt: str, out: list[str]) -> None:
    try:
        cur = conn.execute(stmt)
        while True:
            row = cur.fetchone()
            if row is None:
                break
            out.append("|".join(format_value(v) for v in row))
    except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.Warning) as exc:
        # Misuse of the API (e.g. two statements in one execute) is a splitting bug, not an SQL error.
        raise BrokenCase(f"{type(exc).__name__}: {exc} in {stmt.strip()[:80]!r}") from exc
    except sqlite3.DatabaseError as exc:
        out.append("Error: " + str(exc).replace("\n", " "))


def expected_output(sql: str, db_path: Path | None, *, reverse_unordered: bool = False) -> str:
    """The shell's output for the whole case; `db_path` is needed only for multi-session cases."""
    parts = sessions(sql)
    if len(parts) > 1 and db_path is None:
        raise BrokenCase("a case with -- @reopen needs a database file")
    out: list[str] = []
    for part in parts:
        conn = sqlite3.connect(str(db_path) if db_path else ":memory:", isolation_level=None)
        conn.text_factory = _decode
        try:
            if reverse_unordered:
                # Used by the case linter: a case whose output changes here depends on an unspecified row order.
                conn.execute("PRAGMA reverse_unordered_selects = ON")
            for stmt in split_statements(part):
                run_statement(conn, stmt, out)
        finally:
            conn.close()
    return "".join(line + "\n" for line in out)
