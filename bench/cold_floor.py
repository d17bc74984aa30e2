"""The cold-start floor: import the bare serving stack, then serve `/ping` with BedrockAgentCoreApp.

What any LangGraph-on-AgentCore process pays before it can answer a health check; `bench/cold_start.py`
reports the agent's ready time as a ratio to this. Serves on 127.0.0.1:$PORT.
"""

import os

import bedrock_agentcore.runtime  # noqa: F401
import boto3  # noqa: F401
import langchain_aws  # noqa: F401
import langgraph.graph
import langgraph.prebuilt  # noqa: F401
from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()

if __name__ == "__main__":
    app.run(port=int(os.environ["PORT"]), host="127.0.0.1")
