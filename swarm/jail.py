"""Run one untrusted artifact (e.g. a candidate's engine binary) where it can start no other program.

`python -m swarm.jail [--rw DIR] -- PROGRAM [ARGS...]` mounts only PROGRAM, the C runtime libraries it may link
(libc, libm, libgcc_s and the dynamic loader), a private /tmp and DIR; no /usr/bin, no interpreter, no other SQL
engine's library, no network. A judge's harness runs every call of the candidate's artifact through it, so an
artifact that hands its work to sqlite3, Python or another library fails instead of passing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from swarm.sandbox import Sandbox

RUNTIME_LIBS = ("ld-linux*.so*", "libc.so.*", "libm.so.*", "libgcc_s.so.*", "libpthread.so.*", "libdl.so.*",
                "librt.so.*", "libutil.so.*")  # fmt: skip
LIB_DIRS = ("/lib64", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def runtime_libraries() -> list[Path]:
    """The C runtime's shared libraries and loader, by their real paths and the links programs name them by."""
    found: set[Path] = set()
    for folder in LIB_DIRS:
        base = Path(folder)
        if not base.is_dir():
            continue
        for pattern in RUNTIME_LIBS:
            for lib in base.glob(pattern):
                found.add(lib)
                found.add(lib.resolve())
    return sorted(found)


def sandbox(program: Path, rw: list[Path]) -> Sandbox:
    """A jail that sees the program, the runtime libraries and the writable folders, nothing else."""
    return Sandbox(rw=rw, ro=[program, *runtime_libraries()], system=False)


def prefix_for(programs: Path, server: Path | None = None) -> list[str]:
    """The jail's command line before a program of the folder `programs`, with `{dir}` standing for the one folder
    the program may write. A judge hands it to its harness as JSON in SWARM_JAIL: one bubblewrap start per call.
    With `server` (swarm/jailserver.c) the jail is for that server as its PID 1, and only /tmp (which the server
    empties after each call) and `{dir}` are writable, so that nothing else outlives a call; no process in it keeps
    a capability (run by root, bubblewrap would leave them all, CAP_SYS_PTRACE included, which would let a call
    take over the server)."""
    placeholder = Path("/{dir}")
    ro = [programs, *runtime_libraries(), *([server] if server else [])]
    argv = Sandbox(rw=[placeholder], ro=ro, system=False).wrap([], placeholder)
    if server is not None:
        chdir = argv.index("--chdir")
        argv[chdir:chdir] = ["--remount-ro", "/", "--remount-ro", "/dev"]
        argv[1:1] = ["--as-pid-1", "--cap-drop", "ALL"]
    return [a.replace(str(placeholder), "{dir}") for a in argv]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm.jail", description=__doc__)
    parser.add_argument("--rw", action="append", type=Path, default=[], help="a folder the program may write")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no program given")
    program = Path(command[0]).absolute()
    if not program.is_file():
        print(f"swarm.jail: no program at {program}", file=sys.stderr)
        return 127
    rw = [p.absolute() for p in args.rw]
    cwd = rw[0] if rw else Path("/tmp")
    wrapped = sandbox(program, rw).wrap([str(program), *command[1:]], cwd)
    os.execvp(wrapped[0], wrapped)  # the jail replaces this process: its exit status is the program's


if __name__ == "__main__":
    sys.exit(main())
