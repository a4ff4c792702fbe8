"""The server-side agent loop: server tools offered to the model, run by Kronk, results fed back."""

from kronk.server.agent.loop import AgentLimits, AgentLoop, AgentOutcome, ServerCall

__all__ = ["AgentLimits", "AgentLoop", "AgentOutcome", "ServerCall"]
