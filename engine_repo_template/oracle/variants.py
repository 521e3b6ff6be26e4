"""Variants of a SQL case the engine has never seen: same meaning, different text and different answers.

Given a secret seed, every table, view and index a case creates is renamed (whole words, outside strings and
quoted names), small integer literals inside INSERT statements are shifted by one seed-derived offset (order and
equality among them are kept), and every session opens with a `SELECT <n>;` of a seed-derived number, so a case
with no table and no INSERT (`SELECT abs(-5);`) changes as well, in its text and its answer. sqlite3 computes the
variant's expected output, so an honest engine passes it exactly when it passes the case, and an engine that
replays recorded answers of the visible cases does not.
"""

from __future__ import annotations

import hashlib
import re

TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?\*/)
      |(?P<string>'(?:[^']|'')*')
      |(?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
      |(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
      |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<other>.)""",
    re.DOTALL | re.VERBOSE,
)
CREATED = re.compile(
    r"\bCREATE\s+(?:TEMP\s+|TEMPORARY\s+|UNIQUE\s+)?(?:TABLE|VIEW|INDEX)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_]\w*)",
    re.IGNORECASE,
)
REOPEN = re.compile(r"(^[ \t]*--[ \t]*@reopen[ \t]*(?:\n|$))", re.MULTILINE)
"""The line that ends one session of a case and starts the next (kept by `split`, as reference.sessions cuts)."""
MARK_BASE = 1_000_000
SHIFT_LIMIT = 1_000_000_000
"""Only integers below this are shifted (far above any ordinary value, so no shifted one meets an unshifted one):
the cases about overflow and big rowids keep their exact values."""


def vary(sql: str, seed: str) -> str:
    """The variant of `sql` for `seed` (the same seed always gives the same variant)."""
    digest = hashlib.sha256(seed.encode()).digest()
    suffix = "_v" + digest[:3].hex()
    offset = 1 + digest[3] % 7
    names = {m.group(1).lower() for m in CREATED.finditer(sql)} - {"sqlite_master", "sqlite_schema"}
    out: list[str] = []
    in_insert = False
    for tok in TOKEN.finditer(sql):
        kind, text = tok.lastgroup, tok.group()
        if kind == "word":
            upper = text.upper()
            if upper == "INSERT" or upper == "REPLACE":
                in_insert = True
            if text.lower() in names:
                text += suffix
        elif kind == "other" and text == ";":
            in_insert = False
        elif kind == "number" and in_insert and text.isdigit() and int(text) < SHIFT_LIMIT and not _after_dot(out):
            text = str(int(text) + offset)
        out.append(text)
    return _marked("".join(out), digest)


def _marked(sql: str, digest: bytes) -> str:
    """`sql` with every session opened by a `SELECT <n>;` that no recording of a visible case holds."""
    mark = f"SELECT {MARK_BASE + int.from_bytes(digest[4:8], 'big') % (9 * MARK_BASE)};\n"
    return "".join(part if i % 2 else mark + part for i, part in enumerate(REOPEN.split(sql)))


def _after_dot(out: list[str]) -> bool:
    return bool(out) and out[-1] == "."
