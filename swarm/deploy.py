"""What `swarm init` writes next to swarm.toml so `honcho start` runs a whole swarm on one machine as is:
the Procfile (embedded Redis, a worker per vendor queue, the control worker, beat, Flower) and its `.env`."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from swarm import launch

log = logging.getLogger(__name__)

PROCFILE = """\
# honcho start (or foreman start): one machine, embedded Redis. Settings come from swarm.toml and .env; `swarm init`
# writes both (REDIS_PORT must match the port in SWARM_REDIS_URL). `swarm` and `celery` must be on PATH.
redis: swarm redis --port ${REDIS_PORT:-6380} --dir .swarm/redis
worker_claude: celery -A swarm worker -Q claude -c ${CLAUDE_SLOTS:-1} -n claude@%h --loglevel=INFO
worker_codex: celery -A swarm worker -Q codex -c ${CODEX_SLOTS:-1} -n codex@%h --loglevel=INFO
worker_gemini: celery -A swarm worker -Q gemini -c ${GEMINI_SLOTS:-1} -n gemini@%h --loglevel=INFO
control: celery -A swarm worker -Q merge -c 1 -n merge@%h --loglevel=INFO
beat: celery -A swarm beat -s .swarm/celerybeat-schedule --loglevel=INFO
flower: celery -A swarm flower --address=127.0.0.1 --port=${FLOWER_PORT:-5555}
"""


def dotenv(redis_port: int, flower_port: int) -> str:
    user, password = launch.flower_credentials()
    return f"""# Read by honcho for the Procfile's processes, and by swarm (its SWARM_* lines). Written by `swarm init`.
SWARM_REDIS_URL=redis://127.0.0.1:{redis_port}/0
REDIS_PORT={redis_port}
FLOWER_PORT={flower_port}
FLOWER_BASIC_AUTH={user}:{password}
# Slots per vendor queue, and each vendor's API key (each worker sees only what its CLI reads):
# CLAUDE_SLOTS=2
# ANTHROPIC_API_KEY=
# CODEX_API_KEY=
# GEMINI_API_KEY=
"""


def write(directory: Path) -> list[Path]:
    """The Procfile and .env in `directory`, each only if absent (a user's own is never overwritten)."""
    files = {directory / "Procfile": PROCFILE}
    if not (directory / ".env").exists():
        files[directory / ".env"] = dotenv(_port(6380), _port(5555))
    written = []
    for path, text in files.items():
        if not path.exists():
            path.write_text(text)
            written.append(path)
    return written


def _port(preferred: int) -> int:
    """The usual port when it is free on this machine, else any free one (another swarm may run here)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            return launch.free_port()
    return preferred
