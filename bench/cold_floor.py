"""The cold-start floor: the bare serving stack, and the model called directly — the least a LangGraph-on-AgentCore
process could do before its first token.

It imports what our runtime is built on (bedrock_agentcore, langgraph, langchain_aws, boto3) and serves
BedrockAgentCoreApp on 127.0.0.1:$PORT; its entrypoint calls Bedrock's `converse_stream` itself (boto3, the client
made on the first request, as a hand-written agent would) and streams each text delta as `{"llm_token": text}`.
`bench/cold_start.py` reports the runtime's ready time and first token as ratios to this one's.
"""

import os
from collections.abc import Iterator
from typing import Any

import bedrock_agentcore.runtime  # noqa: F401
import boto3
import langchain_aws  # noqa: F401
import langgraph.graph
import langgraph.prebuilt  # noqa: F401
from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
_client: list[Any] = []


@app.entrypoint
def invoke(payload: dict[str, Any]) -> Iterator[dict[str, str]]:
    if not _client:
        _client.append(boto3.client("bedrock-runtime", region_name=os.environ.get("AWS_REGION", "us-east-1")))
    response = _client[0].converse_stream(
        modelId=os.environ.get("BEDROCK_MODEL_ID", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        messages=[{"role": "user", "content": [{"text": payload["prompt"]}]}])
    for event in response["stream"]:
        delta = event.get("contentBlockDelta", {}).get("delta", {})
        if "text" in delta:
            yield {"llm_token": delta["text"]}


if __name__ == "__main__":
    app.run(port=int(os.environ["PORT"]), host="127.0.0.1")
