"""AgentClient: one agent turn as typed events, from a local or HTTPS server or a deployed AgentCore Runtime.

    from bedrock.client import AgentClient

    async with AgentClient(base_url="http://127.0.0.1:8080") as client:
        async for event in client.stream({"prompt": "What is 25 * 4?", "stream_tokens": True}):
            print(event.type, event.data)
        result = await client.invoke({"prompt": "And 6 * 7?", "session_id": "my-session"})

From a shell: `python -m bedrock.client [--url U | --arn A --region R] [--session S] "What is 25 * 4?"`.

Everything it raises:

    AgentClientError
     ├── AgentConnectionError   could not connect (after the retries), or the connection broke mid-stream
     ├── AgentTimeoutError      the turn did not finish within `timeout`
     ├── AgentHTTPError         the request was refused: `status`, and `code` / `message` of the error body
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

__all__ = [
    "AgentClient",
    "AgentClientError",
    "AgentConnectionError",
    "AgentHTTPError",
    "AgentStreamError",
    "AgentTimeoutError",
    "DEFAULT_URL",
    "runtime_session_id",
]
