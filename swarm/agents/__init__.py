"""Agent adapters: one small module per CLI behind the `Agent` protocol, found by name in `registry`."""

from swarm.agents.base import Agent, AgentResult, AgentRun, Outcome

__all__ = ["Agent", "AgentResult", "AgentRun", "Outcome"]
