"""The guide's callbacks, where the guide imports them: BaseStreamCallback (hooks on a turn) and
MetricsCallback (real per-turn metrics). A facade: they live in `bedrock/core/`."""

from __future__ import annotations

if not __package__:  # imported flat from inside bedrock/, as the guide does
    import _pathfix  # noqa: F401

from bedrock.core.hooks import BaseStreamCallback
from bedrock.core.metrics import MetricsCallback

__all__ = ["BaseStreamCallback", "MetricsCallback"]
