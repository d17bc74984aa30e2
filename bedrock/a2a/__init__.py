"""A2A (agent-to-agent): this runtime's agent as an A2A server, on a2a-sdk — its JSON-RPC binding (v1.0, and v0.3's
method names on the same endpoint) and its agent card. A layer above `server`: every A2A task's turn is a run of the
app's Runtime (`Runtime.validate`, then `Runtime.dispatch(request, "a2a")`), so sessions, ownership, cancel with
rollback and approvals are the runtime's own.

    app.py       A2AService: the routes, built on the first request (a2a-sdk is imported then, never at a cold
                 start); the request's body bounded as /invocations' is; `build_a2a_app`, the standalone app of an
                 A2A-protocol container (`python -m bedrock.a2a`: the same at the root of A2A_PORT, 9000)
    server.py    A2AServer: a2a-sdk's request handler, task store, JSON-RPC and card endpoints, put together
    executor.py  RuntimeExecutor (an AgentExecutor): a task's message → a run; tasks/cancel → the run cancelled and
                 rolled back
    updates.py   TurnUpdates: a run's events → the task's status and artifact updates
    inputs.py    a message → our payload: contextId ↔ session, the text as the prompt, or as the answer to the
                 interrupts an input-required task waits on
    card.py      the agent card: name, description, skills (the graph's tools), security (AUTH_MODE=jwt)
    context.py   who calls: the verified actor in a2a-sdk's ServerCallContext (its user), the AgentCore SDK's
                 request context (BedrockCallContextBuilder)
    tasks.py     RetainedTaskStore: tasks per actor (their owner), finished ones kept RUN_RETENTION_S
"""
