# The worker image: Python with swarm (whose wheel carries the engine template and the examples), Rust (the
# engine template is std-only), sqlite3, and Node 20+ with the three agent CLIs pinned to the versions whose
# behaviour the adapters were checked against (the same pins as .ci/run; tests/test_deploy.py compares them).
ARG NODE_VERSION=20.18.1
FROM node:${NODE_VERSION}-bookworm-slim AS node

FROM rust:1.83-slim-bookworm
# gemini-cli needs Node 20 or newer and Debian bookworm ships 18: Node comes from the official Node image.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip git sqlite3 ca-certificates bubblewrap \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 @google/gemini-cli@0.61.0 \
 && npm cache clean --force
ENV DISABLE_AUTOUPDATER=1 VIRTUAL_ENV=/opt/swarm PATH=/opt/swarm/bin:$PATH
WORKDIR /opt/swarm-src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY swarm ./swarm
COPY engine_repo_template ./engine_repo_template
COPY examples ./examples
RUN python3 -m venv /opt/swarm && pip install --no-cache-dir .
RUN git config --system user.name swarm && git config --system user.email swarm@swarm.invalid
# Workers run as a plain user: claude refuses its unattended permission mode as root (outside IS_SANDBOX=1).
# Oracles get RUSTUP_HOME (set by the Rust image) to find the toolchain and keep a CARGO_HOME of their own;
# agents are handed the image's CARGO_HOME, so it belongs to the plain user.
RUN useradd --create-home --uid 1000 swarm \
 && mkdir -p /var/lib/swarm /var/lib/flower /srv \
 && chown -R swarm:swarm /var/lib/swarm /var/lib/flower /srv "$CARGO_HOME"
USER swarm
WORKDIR /var/lib/swarm
CMD ["celery", "-A", "swarm", "worker", "-Q", "claude"]
