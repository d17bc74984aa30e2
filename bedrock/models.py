"""make_model(settings): the chat model the graph calls — always ChatBedrockConverse."""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from langchain_aws import ChatBedrockConverse

from bedrock.config import Settings

OFFLINE_CREDENTIALS = {"aws_access_key_id": "offline", "aws_secret_access_key": "offline"}


def botocore_config(settings: Settings) -> Config:
    """Retries and timeouts for the Bedrock Runtime client."""
    return Config(
        retries={"mode": settings.bedrock_retry_mode, "total_max_attempts": settings.bedrock_max_attempts},
        connect_timeout=settings.bedrock_connect_timeout_s,
        read_timeout=settings.bedrock_read_timeout_s,
    )


def make_model(settings: Settings, endpoint_url: str | None = None) -> ChatBedrockConverse:
    """ChatBedrockConverse for `bedrock` and `offline` alike.

    Offline runs only swap the endpoint (the local rule-based one; started here unless `endpoint_url`
    names one) and use dummy credentials; signing, retries and stream decoding stay botocore's.
    A `bedrock` run honours `endpoint_url`, else botocore's own resolution (incl. AWS_ENDPOINT_URL_BEDROCK_RUNTIME).
    """
    extra: dict[str, Any] = {}
    if settings.model_provider == "offline":
        if endpoint_url is None:
            from bedrock.offline_endpoint import OfflineBedrockEndpoint

            endpoint_url = OfflineBedrockEndpoint(settings.offline_token_delay_ms).start().url
        extra.update(OFFLINE_CREDENTIALS)
    if endpoint_url is not None:
        extra["endpoint_url"] = endpoint_url
    return ChatBedrockConverse(
        model=settings.bedrock_model_id,
        region_name=settings.aws_region,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        config=botocore_config(settings),
        **extra,
    )
