"""Sandboxes for untrusted code (agents, candidates' builds and tests, their artifacts), made with bubblewrap.

A sandbox sees a read-only system (/usr, /etc and the toolchains it is given), a fresh /proc of its own PID
namespace, a private /tmp, and only the folders it is handed; no other process of the machine, none of the swarm's
folders (mirror, worktrees, logs, caches, deployment config). Every process started inside dies when the sandbox's
first process ends (own PID namespace, --die-with-parent), however it tried to leave its group or environment.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from swarm import egress, proc
from swarm.errors import SandboxUnavailable, SwarmError

log = logging.getLogger(__name__)

BWRAP = "bwrap"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`)"
UNSAFE_HINT = "or set SWARM_UNSAFE_NO_SANDBOX=true to run agents and oracles unsandboxed (NOT safe against agents)"
SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MASKED_FILES = ("libsqlite3.a", "libsqlite3.so", "libsqlite3.so.0")
"""Libraries a candidate could link to pass the engine's judge by delegating to another SQL engine."""
LIBRARY_DIRS = ("/usr/lib", "/usr/lib64", "/usr/local/lib")
MASK_REFRESH_SECONDS = 600.0
TOOLCHAIN_REFRESH_SECONDS = 60.0
Network = Literal["none", "proxy", "host"]
"""none: only a loopback of its own; proxy: that, plus the allow-listed hosts through the egress proxy (see
swarm.egress); host: the host's network, every local service included (unsafe against agents)."""


@dataclass
class Sandbox:
    """What one sandboxed run may see and write; `wrap` turns it into a bubblewrap command line."""

    rw: list[Path] = field(default_factory=list)
    """Folders bound writable at their own paths (a workspace, a build tree, a home)."""
    ro: list[Path] = field(default_factory=list)
    """Files and folders bound read-only at their own paths (toolchains, a prompt file, a harness)."""
    binds: list[tuple[Path, str]] = field(default_factory=list)
    """(source, destination) folders bound writable at another path (a build cache under the tree)."""
    network: Network = "none"
    """What it can reach (see `Network`)."""
    allow_hosts: list[str] = field(default_factory=list)
    """host:port destinations the egress proxy lets through in `proxy` mode."""
    proxy: Path | None = None
    """The running egress proxy's unix socket, bound into a `proxy` sandbox (set by whoever runs the proxy)."""
    system: bool = True
    """Mount the read-only system folders; a jail for one artifact mounts only that and its libraries."""
    masked: list[Path] = field(default_factory=list)
    """Files hidden behind an empty read-only file."""
    hidden: list[Path] = field(default_factory=list)
    """Paths no mount may reveal: a folder given above that holds one of them is left out (see `hiding`)."""

    def with_programs(self, argv: Sequence[str]) -> Sandbox:
        """This sandbox plus, read-only, the files argv names by absolute path (the program, its script) and the
        prefixes of the program (a venv, a node install) so it finds its own libraries."""
        named = [Path(a) for a in argv if os.path.isabs(a) and os.path.exists(a)]
        extra = [p for p in named if not _under_system(p)]
        extra += toolchains("", [str(p.parent) for p in named if p.is_file() and os.access(p, os.X_OK)])
        return replace(self, ro=[*self.ro, *extra])

    def hiding(self, secret: Iterable[Path]) -> Sandbox:
        """This sandbox without any folder that holds one of `secret` (a toolchain prefix that happens to be the
        project folder, with the deployment config and the swarm's workdir in it)."""
        return replace(self, hidden=[*self.hidden, *(Path(p).absolute() for p in secret)])

    def _reveals(self, path: Path) -> bool:
        return any(h == path.absolute() or h.is_relative_to(path.absolute()) for h in self.hidden)

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """The bubblewrap command that runs argv inside this sandbox, in cwd."""
        args = [BWRAP, "--die-with-parent", "--new-session", "--unshare-all"]
        if self.network == "host":
            args.append("--share-net")
        ro = list(self.ro)
        if self.network == "proxy":
            argv, extra = self._behind_proxy(argv)
            args += extra
            ro += [egress.FORWARDER, *toolchains("", [str(Path(sys.executable).parent)])]
        if self.system:
            args += _system_mounts()
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in _dedupe(p for p in ro if not self._reveals(p)):
            args += ["--ro-bind-try", str(path), str(path)]
        for path in _dedupe(p for p in self.rw if not self._reveals(p)):
            args += ["--bind", str(path), str(path)]
        for src, dest in self.binds:
            args += ["--bind", str(src), dest]
        for path in self.masked:
            args += ["--ro-bind-try", "/dev/null", str(path)]
        return [*args, "--chdir", str(cwd), "--", *argv]

    def _behind_proxy(self, argv: Sequence[str]) -> tuple[list[str], list[str]]:
        """argv behind the in-sandbox forwarder, and the bwrap arguments that bind the proxy's socket and point
        the proxy variables at the forwarder."""
        if self.proxy is None:
            raise SwarmError("a proxy-mode sandbox was wrapped with no egress proxy running (swarm.egress.serving)")
        args = ["--ro-bind", str(self.proxy), egress.EGRESS_SOCKET]
        for name, value in egress.proxy_env().items():
            args += ["--setenv", name, value]
        return egress.forwarder_argv(sys.executable, argv), args


def _system_mounts() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    return args


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in sorted({Path(p).absolute() for p in paths}):
        if not any(path.is_relative_to(s) for s in seen):
            seen.append(path)
    return seen


def toolchains(path_var: str, extra: Iterable[str] = ()) -> list[Path]:
    """Read-only folders a sandboxed program needs to find its tools: the prefix of every PATH entry (a venv, a
    pyenv or cargo home, node's), the real prefix of what they link to, and the given extra folders.

    Every agent run and judge asks, several times per attempt, and the answer takes some 300 path checks: it is
    kept for TOOLCHAIN_REFRESH_SECONDS, so a toolchain installed while the swarm runs is found within that time."""
    epoch = int(time.monotonic() // TOOLCHAIN_REFRESH_SECONDS)
    return list(_toolchains(path_var, tuple(str(e) for e in extra), epoch))


@functools.lru_cache(maxsize=64)
def _toolchains(path_var: str, extra: tuple[str, ...], epoch: int) -> tuple[Path, ...]:
    found: set[Path] = set()
    for entry in [*path_var.split(os.pathsep), *extra]:
        if not entry or not os.path.isabs(entry):
            continue
        for p in {Path(entry), Path(entry).resolve()}:
            if _under_system(p) or not p.exists():
                continue
            found.add(p.parent if p.name in ("bin", "sbin", "shims") else p)
    for prefix in list(found):
        for exe in (prefix / "bin").glob("python*"):
            real = exe.resolve()  # a venv's python is a link into the interpreter's own prefix
            if not _under_system(real):
                found.add(real.parent.parent)
    return tuple(sorted(found))


def _under_system(path: Path) -> bool:
    return any(path == Path(d) or path.is_relative_to(d) for d in SYSTEM_DIRS)


def masked_libraries() -> list[Path]:
    """Library files in the system's library folders that would let a candidate link another SQL engine. One walk
    of those folders costs up to a second and a half here, once per verdict before: it is now done at most every
    MASK_REFRESH_SECONDS, so a library installed while the swarm runs is masked from the next walk on."""
    return list(_masked_libraries(int(time.monotonic() // MASK_REFRESH_SECONDS)))


@functools.lru_cache(maxsize=1)
def _masked_libraries(epoch: int) -> tuple[Path, ...]:
    found: set[Path] = set()
    for folder in LIBRARY_DIRS:
        for root, dirs, files in os.walk(folder):  # one walk for all names; links to folders are not followed
            for name in MASKED_FILES:
                if name in files or name in dirs:
                    path = Path(root) / name
                    if path.is_symlink() or path.is_file():
                        found.add(path)
    return tuple(sorted(found))


@functools.cache
def check() -> str:
    """Why no sandbox can be made here ("" when it can): bubblewrap missing, or namespaces refused."""
    if shutil.which(BWRAP) is None:
        return f"bubblewrap (`{BWRAP}`) is not installed: {INSTALL_HINT}"
    probe = [shutil.which(BWRAP) or BWRAP, *Sandbox().wrap(["true"], Path("/"))[1:]]
    with tempfile.TemporaryDirectory(prefix="swarm-sandbox-check-") as tmp:
        log_path = Path(tmp) / "probe.log"
        done = proc.run(probe, cwd=Path(tmp), env={"PATH": "/usr/bin:/bin"}, timeout=30, log_path=log_path)
        if done.ok:
            return ""
        err = proc.tail(log_path, 4096).strip().splitlines()
    why = err[-1] if err else done.describe()
    return f"bubblewrap cannot make a sandbox here ({why}): user namespaces may be disabled"


def require(unsafe_no_sandbox: bool) -> None:
    """Fail closed: raise when no sandbox can be made, unless the user explicitly opted out."""
    problem = check()
    if not problem:
        return
    if unsafe_no_sandbox:
        log.warning("UNSAFE: running agents and oracles WITHOUT a sandbox (%s)", problem)
        return
    raise SandboxUnavailable(f"{problem}; {UNSAFE_HINT}")
