"""The `swarm` commands that watch and steer a running swarm; cli.py registers them on its group."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from swarm.runtime import Runtime, connect
from swarm.settings import load_settings

log = logging.getLogger(__name__)


def _runtime(ctx: click.Context) -> Runtime:
    config: Path | None = (ctx.obj or {}).get("config")
    return connect(load_settings(config))


@click.command()
@click.option("--port", type=int, default=None, help="Port of /metrics (default: 9808).")
@click.option("--address", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.pass_context
def exporter(ctx: click.Context, port: int | None, address: str) -> None:
    """Serve the swarm's metrics (swarm_*) for Prometheus on /metrics."""
    from swarm import exporter as exporter_mod

    port = exporter_mod.DEFAULT_PORT if port is None else port
    rt = _runtime(ctx)
    click.echo(f"swarm exporter: http://{address}:{port}/metrics")
    try:
        exporter_mod.serve(rt, address, port)
    except KeyboardInterrupt:
        pass


COMMANDS = [exporter]


def register(group: click.Group) -> None:
    """Add these commands, and --version, to the `swarm` group."""
    for command in COMMANDS:
        group.add_command(command)
    click.version_option(package_name="swarm", prog_name="swarm")(group)
