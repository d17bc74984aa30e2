"""The same runs as AG-UI events (the `ag-ui-protocol` package's models and encoder), and AG-UI input as our payload.

Our events → AG-UI events (`AGUIStream`):

    agent_start              RUN_STARTED: threadId and runId the input's; rawEvent our agent_start data (our own
                             run_id, which `cancel` and `resume` name; session_id, actor_id)
    llm_token                TEXT_MESSAGE_START (role assistant) on a step's first token; TEXT_MESSAGE_CONTENT each
    agent_step ai            TEXT_MESSAGE_END if its tokens came, else START / CONTENT (its whole text) / END when it
                             has text; then per tool call not yet started in this run TOOL_CALL_START (parentMessageId:
                             this message) / TOOL_CALL_ARGS (the args as one JSON text) / TOOL_CALL_END
    agent_step ai, node      nothing: the built-in agent's tools node re-writes the model's message with the approved,
      `tools`                edited args, and AG-UI does not re-emit a call in the run that resumes it (the edit is in
                             the resume)
    agent_step tool          TOOL_CALL_RESULT (messageId, toolCallId, content, role tool)
    agent_step update        CUSTOM name "update", value {node, namespace, values}: what a node wrote besides messages.
                             Not STATE_DELTA: an update is one node's write, not the agent's state (a reducer's channel
                             gets it appended, a subgraph has a state of its own), so as a patch of the client's state
                             it would be wrong; the state itself is STATE_SNAPSHOT, below
    custom                   CUSTOM name "custom", value {node, namespace, value}: what a node wrote with
                             `get_stream_writer()` (progress and the like)
    agent_step human/input/  nothing: the client sent them
      resume
    interrupt                kept for the terminal event (it is not terminal)
    agent_end completed      STATE_SNAPSHOT of the final state when the run asked for it (`include_state`); then
                             RUN_FINISHED outcome success; result the output; usage [TokenUsage] from the metrics
                             (none without a model call: not a measured zero); rawEvent our data (every metric)
    agent_end interrupted    (STATE_SNAPSHOT likewise, then) RUN_FINISHED outcome interrupt, one Interrupt per pending
                             interrupt, its id ours (what `resume` names):
                               a tool approval of the built-in agent (APPROVAL_REQUIRED_TOOLS): reason "tool_call",
                                 toolCallId, message, responseSchema {approved, editedArgs}, metadata {toolName, args}
                               LangChain's HumanInTheLoopMiddleware, one call (`interrupt_mode="per_call"`): reason
                                 "tool_call", toolCallId, message its description, responseSchema one decision
                               the same middleware, batched (one interrupt for a model turn's calls): reason
                                 "langchain:human_in_the_loop", toolCallId when it reviews one call seen in this run,
                                 message the descriptions, responseSchema {decisions: one per call, in order}
                               any other `interrupt(value)`: reason "input_required", message the value when it is a
                                 string (else its JSON), responseSchema the interrupt's own if it has one
                             and each with metadata {node, namespace, value} (the approval: as above)
    error, code cancelled    RUN_FINISHED outcome cancelled: stopped on request, not failed; the turn was rolled back,
                             so the next run is an ordinary new one (what RunFinishedCancelledOutcome says)
    error                    RUN_ERROR (message, code; rawEvent our data, with `retryable`)

Lifecycle: exactly one `RUN_STARTED` first (also before an `error` that came without `agent_start`, e.g. a
refused owner check), a text message still open is ended before the terminal event, and exactly one terminal
event (`RUN_FINISHED` or `RUN_ERROR`) last; nothing after it. Message ids are `{our run_id}-msg-{step}`:
unique in the thread (our run ids are server-made; the client's runId may be reused) and the same on a replay.
Timestamps are our ISO ones as epoch milliseconds (the model takes an int), on the run-scoped events only.

AG-UI input → our payload: `payload_from_agui` (threadId → session, the last user message → prompt, `resume`
entries → our resume; `_input`'s docstring has the whole mapping).

`encode` writes what ag_ui's EventEncoder writes: `data: <one-line JSON, camelCase>\\n\\n` — no `event:` and no
`id:` line, so an AG-UI stream cannot be re-attached with Last-Event-ID (our `resume` action can, by our run id).

Three modules: `_input` (RunAgentInput → our payload), `_interrupts` (our interrupts → AG-UI's), `_stream` (our
events → AG-UI's, and their encoding); the names below are this package's whole surface.
"""

from bedrock.wire.agui._input import (CANCELLED, FORWARDED, OUR_PAYLOAD_KEYS, OURS_ONLY, looks_like_run_agent_input,
                                      payload_from_agui, session_id_for)
from bedrock.wire.agui._interrupts import APPROVAL_SCHEMA, HITL_DECISIONS, HITL_REASON, decision_schema
from bedrock.wire.agui._stream import CUSTOM_NAME, UPDATE_NAME, AGUIStream, encode

__all__ = ["APPROVAL_SCHEMA", "CANCELLED", "CUSTOM_NAME", "FORWARDED", "HITL_DECISIONS", "HITL_REASON",
           "OURS_ONLY", "OUR_PAYLOAD_KEYS", "UPDATE_NAME", "AGUIStream", "decision_schema", "encode",
           "looks_like_run_agent_input", "payload_from_agui", "session_id_for"]
