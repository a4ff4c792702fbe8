"""The server-side agent loop: server tools offered to the model, run by Kronk, results fed back.

`AgentLoop.stream` yields the typed events of kronk.server.agent.events; `AgentLoop.run` is the
same loop, awaited for its outcome.
"""

from kronk.server.agent.events import (
    AgentEvent,
    CallFinished,
    CallStarted,
    LoopFinished,
    ModelDelta,
    TurnFinished,
)
from kronk.server.agent.loop import (
    AgentLimits,
    AgentLoop,
    AgentOutcome,
    Gate,
    ServerCall,
    StreamTurn,
    ToolCaller,
    sum_usage,
)

__all__ = ["AgentEvent", "AgentLimits", "AgentLoop", "AgentOutcome", "CallFinished", "CallStarted", "Gate",
           "LoopFinished", "ModelDelta", "ServerCall", "StreamTurn", "ToolCaller", "TurnFinished", "sum_usage"]
