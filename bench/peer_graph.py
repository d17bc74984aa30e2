"""The graphs langgraph-api serves in bench/peer.py: this project's built-in agent (the calculator), compiled with no
checkpointer (the peer server adds its own, as it does for any graph).

- `graph`: its model made as our runtime makes it (ChatBedrockConverse reading its stream on the event loop through
  aiobotocore): the same graph object ours serves, so the two servers' own costs are what differ;
- `graph_stock`: its model as langchain-aws's docs make it (`ChatBedrockConverse(model=...)`, which reads each
  chunk of its boto3 stream on a worker thread): what a user serving the agent on langgraph-api would write.

Both reach the model endpoint named by AWS_ENDPOINT_URL_BEDROCK_RUNTIME.
"""

from __future__ import annotations

from langchain_aws import ChatBedrockConverse

from bedrock.agents.calculator import graph as calculator
from bedrock.config import Settings
from bedrock.core.model import make_model

_settings = Settings.from_env()
graph = calculator(make_model(_settings), _settings).compile()
graph_stock = calculator(ChatBedrockConverse(model=_settings.bedrock_model_id, region_name=_settings.aws_region,
                                             temperature=_settings.temperature, max_tokens=_settings.max_tokens),
                         _settings).compile()
