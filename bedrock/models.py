"""make_model(settings): the chat model the graph calls."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from bedrock.config import Settings


def make_model(settings: Settings) -> BaseChatModel:
    """`bedrock` → ChatBedrockConverse (boto3, adaptive retries); `offline` → the rule-based stand-in."""
    if settings.model_provider == "offline":
        from bedrock.offline import OfflineChatModel

        return OfflineChatModel(token_delay_ms=settings.offline_token_delay_ms)
    # Imported here: langchain-aws and botocore cost ~0.3 s to import, and offline runs never need them.
    from botocore.config import Config
    from langchain_aws import ChatBedrockConverse

    return ChatBedrockConverse(
        model=settings.bedrock_model_id,
        region_name=settings.aws_region,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        config=Config(retries={"mode": "adaptive", "max_attempts": 4}, connect_timeout=10, read_timeout=120),
    )
