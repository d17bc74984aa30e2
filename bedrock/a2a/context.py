"""Who calls, as a2a-sdk sees it: the actor BearerAuth verified (AUTH_MODE=jwt) is the ServerCallContext's user, whose
name owns the tasks it starts (a2a-sdk's task stores resolve a task's owner from the user: `resolve_user_scope`), and
is the actor of its runs (executor.py). Without AUTH_MODE=jwt there is no verified actor: every caller is the same
anonymous user, as every caller may act in any session there (Runtime.open_owner).

The rest of the context is the AgentCore SDK's own (BedrockCallContextBuilder): the request and session ids, the
workload access token and the forwarded headers set as the SDK sets them for /invocations — what a tool calling
AgentCore Identity needs — and the headers a2a-sdk reads the protocol version from.
"""

from __future__ import annotations

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes import ServerCallContextBuilder
from bedrock_agentcore.runtime.a2a import BedrockCallContextBuilder
from starlette.requests import Request

from bedrock.server.auth import verified_actor


class ActorUser(User):
    """A caller: the verified actor, or (no verified actor) the anonymous one, whose name is empty."""

    def __init__(self, actor: str | None) -> None:
        self.actor = actor

    @property
    def is_authenticated(self) -> bool:
        return self.actor is not None

    @property
    def user_name(self) -> str:
        return self.actor or ""


class ActorContextBuilder(ServerCallContextBuilder):
    """The AgentCore SDK's call context, with the verified actor as its user."""

    def __init__(self) -> None:
        self._bedrock = BedrockCallContextBuilder()

    def build(self, request: Request) -> ServerCallContext:
        context: ServerCallContext = self._bedrock.build(request)
        context.user = ActorUser(verified_actor(request.scope))
        return context


def actor_of(context: ServerCallContext) -> str | None:
    """The verified actor of a call, if any."""
    user = context.user
    return user.actor if isinstance(user, ActorUser) else None
