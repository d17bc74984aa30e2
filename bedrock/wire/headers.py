"""The HTTP headers of the wire contract."""

# AgentCore Runtime's session header: it routes every request of one runtime session to the same microVM,
# and is the session's id when the payload names none.
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
