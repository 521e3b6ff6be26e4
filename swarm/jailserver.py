"""The jail server, the judge's side: compile it once, and offer it to a harness beside the per-call jail.

A harness that runs a jailed program hundreds of times (the engine template's: ~600 calls) pays one bubblewrap
start per call with SWARM_JAIL. The jail server (jailserver.c) is the first process of ONE jail, with the same
mounts, and runs the program once per request (see swarm/jailclient.py). It is C, not Python: an interpreter in the
jail would let the program hand its work to it. Compiled with the machine's `cc` into a cache named by the hash of
its source; with no compiler (or a failed compile) nothing is offered and harnesses use SWARM_JAIL as before.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from swarm import jail, proc
from swarm.environ import child_env

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("jailserver.c")
CLIENT = Path(__file__).with_name("jailclient.py")
CFLAGS = ("-O2", "-std=c11", "-Wall", "-Wextra", "-Werror")
COMPILE_TIMEOUT = 120.0


def program(cache: Path, source: Path = SOURCE, compiler: str | None = None) -> Path | None:
    """The compiled jail server in `cache` (compiled now if no build of this source is there); None, logged once,
    when there is no C compiler or the compile fails."""
    code = source.read_bytes()
    key = hashlib.sha256(code + " ".join(CFLAGS).encode()).hexdigest()[:16]
    built = cache / f"jailserver-{key}"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    path = child_env().get("PATH")
    cc = compiler or shutil.which("cc", path=path) or shutil.which("gcc", path=path) or shutil.which("clang", path=path)
    if cc is None:
        _once("no C compiler (cc, gcc or clang) to build the jail server: every jailed call starts its own jail")
        return None
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
        out, log_path = Path(tmp) / "jailserver", Path(tmp) / "cc.log"
        done = proc.run([cc, *CFLAGS, "-o", str(out), str(source)], cwd=Path(tmp), env=child_env(),
                        timeout=COMPILE_TIMEOUT, log_path=log_path)  # fmt: skip
        if not done.ok or not out.is_file():
            errors = proc.tail(log_path, 4000).strip()
            _once(f"could not compile the jail server {source} with {cc} ({done.describe()}); every jailed call "
                  f"starts its own jail until it compiles:\n{errors}")  # fmt: skip
            return None
        os.replace(out, built)  # atomic: a judge of another slot sees the whole program or none
    return built


@functools.cache
def _once(message: str) -> None:
    log.warning("%s", message)


def spec(programs: Path, server: Path) -> dict[str, Any]:
    """SWARM_JAIL_SERVER's value: the command line of one jail (as SWARM_JAIL's, plus the server, `{dir}` its
    scratch folder, and that folder's `tmp` as the jail's /tmp) and the client module a harness loads."""
    prefix = jail.prefix_for(programs, server=server)
    return {"argv": [*prefix, str(server)], "client": str(CLIENT)}
