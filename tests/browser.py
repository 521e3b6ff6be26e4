"""Headless Chromium for the tests that look at pages as a user would: a screenshot and the rendered DOM."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium() -> str:
    """The Chromium binary; skipped without one, except under CI=true where the test fails (.ci/run installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("no chromium found, and CI=true: the browser tests need it (apt-get install -y chromium)")
    pytest.skip("no chromium available")


def _run(url: str, extra: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(url: str, out: Path, size: str = "1280,1600") -> Path:
    """A PNG of the page as Chromium renders it."""
    result = _run(url, [f"--screenshot={out}", f"--window-size={size}", "--virtual-time-budget=5000"])
    assert out.exists() and out.stat().st_size > 0, f"chromium made no screenshot of {url}: {result.stderr[-2000:]}"
    return out


def dom(url: str) -> str:
    """The page's DOM after its scripts ran."""
    result = _run(url, ["--dump-dom", "--virtual-time-budget=5000"])
    assert result.returncode == 0, f"chromium could not load {url}: {result.stderr[-2000:]}"
    return result.stdout


def distinct_rows(png: Path) -> int:
    """How many different pixel rows (every 8th) a PNG has: one for a blank page; read without an image library."""
    import struct
    import zlib

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    pos, idat, width, height, colour_type = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, _, colour_type = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    channels = {2: 3, 6: 4, 0: 1, 4: 2}[colour_type]
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    rows = {raw[y * stride + 1 : (y + 1) * stride] for y in range(0, height, 8)}
    return len(rows)
