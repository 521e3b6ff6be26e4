"""swarm: a swarm of coding agents on one git repository, coordinated by Celery on Redis.

`celery -A swarm worker -Q <vendor>` finds the app in `swarm.celery`; nothing happens at import time.
"""

__version__ = "0.1.0"
