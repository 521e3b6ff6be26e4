# The worker image: Python with swarm, Rust (the engine template is std-only), sqlite3, Node with the three
# agent CLIs pinned to the versions whose behaviour the adapters were checked against.
FROM rust:1.83-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip git sqlite3 nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g @anthropic-ai/claude-code@2.1.197 @openai/codex@0.169.0 @google/gemini-cli@0.61.0 \
 && npm cache clean --force
ENV DISABLE_AUTOUPDATER=1 VIRTUAL_ENV=/opt/swarm PATH=/opt/swarm/bin:$PATH
WORKDIR /opt/swarm-src
COPY pyproject.toml README.md ./
COPY swarm ./swarm
COPY engine_repo_template ./engine_repo_template
RUN python3 -m venv /opt/swarm && pip install --no-cache-dir .
RUN git config --system user.name swarm && git config --system user.email swarm@swarm.invalid
# Workers run as a plain user: claude refuses its unattended permission mode as root (outside IS_SANDBOX=1).
RUN useradd --create-home --uid 1000 swarm && mkdir -p /var/lib/swarm /srv && chown swarm:swarm /var/lib/swarm /srv
USER swarm
WORKDIR /var/lib/swarm
CMD ["celery", "-A", "swarm", "worker", "-Q", "claude"]
