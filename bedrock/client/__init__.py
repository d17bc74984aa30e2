"""AgentClient: one agent turn as typed events, from a local or HTTPS server or a deployed AgentCore Runtime.

    from bedrock.client import AgentClient

    async with AgentClient(base_url="http://127.0.0.1:8080") as client:
        async for event in client.stream({"prompt": "What is 25 * 4?", "stream_tokens": True}):
            print(event.type, event.data)
        result = await client.invoke({"prompt": "And 6 * 7?", "session_id": "my-session"})

One WebSocket (the server's `/ws`) for many turns and actions, several at once; the same events, results and errors:

    async with AgentClient(base_url="http://127.0.0.1:8080") as client:
        async with client.connect() as conn:                   # a Connection
            await conn.invoke({"prompt": "My name is Alice", "session_id": "s"})
            async for event in conn.stream({"prompt": "What's my name?", "session_id": "s"}):
                print(event.type, event.data)
            print(await conn.history("s"))

From a shell: `python -m bedrock.client [--url U | --arn A --region R] [--session S] "What is 25 * 4?"`.

Everything it raises:

    AgentClientError
     ├── AgentConnectionError   could not connect (after the retries), or the connection broke mid-stream (a
     │                          Connection's: every call waiting on it raises this; open another)
     ├── AgentTimeoutError      the turn did not finish within `timeout`
     ├── AgentHTTPError         the request was refused: `status`, and `code` / `message` of the error body
     │                          (on a Connection, of the refusal's message; or its handshake refused: 401, 403)
     └── AgentStreamError       the turn ended with an `error` event (`invoke`), or without a final event
"""

from bedrock.client._client import DEFAULT_URL, AgentClient
from bedrock.client._errors import (
    AgentClientError,
    AgentConnectionError,
    AgentHTTPError,
    AgentStreamError,
    AgentTimeoutError,
)
from bedrock.client._runtime import runtime_session_id
from bedrock.client._socket import Connection

__all__ = [
    "AgentClient",
    "AgentClientError",
    "AgentConnectionError",
    "AgentHTTPError",
    "AgentStreamError",
    "AgentTimeoutError",
    "Connection",
    "DEFAULT_URL",
    "runtime_session_id",
]
