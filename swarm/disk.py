"""Whether the disk under the swarm's workdir filled up (its space or its inodes) while an attempt ran.

An agent that cannot write its files or its output, or a build that cannot write its objects, fails; when the disk
was full meanwhile, that failure is the machine's, not the task's, and must not use up the task's budget
(`Pipeline._rejected` turns it into an infrastructure rejection, retried after the usual backoff). Unless the
attempt filled the disk itself: when its own folders (the agent's workspace and home, the attempt's logs) hold
most of what is used on that disk, the failure stays the task's, so an agent cannot buy free retries by filling it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

FULL_BELOW = 1 << 20
"""Bytes free under which a disk counts as full."""
SAMPLE_SECONDS = 1.0


@dataclass(frozen=True)
class Full:
    """One time the disk was seen full, and how much of it the attempt's own folders held then: in bytes, or in
    files when it was its inodes that ran out."""

    path: Path
    free: int
    used: int
    own: int
    inodes: bool = False

    @property
    def by_the_attempt(self) -> bool:
        return self.own * 2 > self.used

    def __str__(self) -> str:
        if self.inodes:
            return f"the disk under {self.path} was full (no free inodes, {self.used} files) during the attempt"
        return f"the disk under {self.path} was full ({self.free} bytes free) during the attempt"


class DiskWatch:
    """Samples the free space under `paths` (one sample per device) every `every` seconds until stopped; `full`
    is the first time it was full that the attempt's own folders (`own()`, read when it is seen) do not explain."""

    def __init__(self, paths: Iterable[Path], own: Callable[[], Iterable[Path | None]],
                 every: float = SAMPLE_SECONDS) -> None:  # fmt: skip
        self.own, self.every = own, every
        self.paths = _one_per_device(paths)
        self.seen: Full | None = None
        self._in_episode: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="disk-watch", daemon=True)

    def start(self) -> DiskWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def full(self) -> Full | None:
        """The full disk this attempt did not cause, if any, sampled once more now."""
        self.sample()
        return self.seen

    def sample(self) -> None:
        with self._lock:
            for path in self.paths:
                self._sample(path)

    def _sample(self, path: Path) -> None:
        try:
            st = os.statvfs(path)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        no_inodes = st.f_files > 0 and st.f_favail == 0  # 0 files in all: a file system without a fixed count
        if free >= FULL_BELOW and not no_inodes:
            self._in_episode.discard(path)
            return
        if path in self._in_episode or self.seen is not None:
            return  # the attempt's folders are read once per time the disk fills
        self._in_episode.add(path)
        own_bytes, own_files = _usage(self.own())
        if free < FULL_BELOW:
            seen = Full(path, free, (st.f_blocks - st.f_bfree) * st.f_frsize, own_bytes)
        else:
            seen = Full(path, st.f_favail, st.f_files - st.f_ffree, own_files, inodes=True)
        if not seen.by_the_attempt:
            self.seen = seen

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()


def _one_per_device(paths: Iterable[Path]) -> list[Path]:
    seen: dict[int, Path] = {}
    for path in paths:
        try:
            seen.setdefault(os.stat(path).st_dev, path)
        except OSError:
            continue
    return list(seen.values())


def _usage(folders: Iterable[Path | None]) -> tuple[int, int]:
    """Bytes the folders' files take on disk, and how many files and folders they hold (links not followed, each
    file once)."""
    total, files = 0, set()
    for folder in folders:
        if folder is None:
            continue
        for root, dirs, names in os.walk(folder):
            for name in dirs + names:
                try:
                    s = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                if (s.st_dev, s.st_ino) not in files:
                    files.add((s.st_dev, s.st_ino))
                    total += s.st_blocks * 512
    return total, len(files)
