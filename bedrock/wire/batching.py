"""TokenBuffer: model tokens batched into fewer `llm_token` events, by count and by age."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBuffer:
    """Batches tokens: `add()` returns the batch once it holds `buffer_size` tokens or its oldest token is
    `max_delay_ms` old, else None; `flush()` returns whatever is left. Nothing is dropped or reordered."""

    __slots__ = ("buffer_size", "max_delay_s", "_clock", "_tokens", "_first_at")

    def __init__(
        self,
        buffer_size: int = 10,
        max_delay_ms: float | None = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        self.buffer_size = buffer_size
        self.max_delay_s = None if max_delay_ms is None else max_delay_ms / 1000
        self._clock = clock
        self._tokens: list[str] = []
        self._first_at = 0.0

    def __len__(self) -> int:
        return len(self._tokens)

    def add(self, token: str) -> str | None:
        """Buffer one token; return the joined batch when it is due."""
        tokens = self._tokens
        if self.buffer_size == 1 and not tokens:
            return token  # unbatched: no clock reads on the per-token path
        if not tokens and self.max_delay_s is not None:
            self._first_at = self._clock()
        tokens.append(token)
        if len(tokens) >= self.buffer_size or (
            self.max_delay_s is not None and self._clock() - self._first_at >= self.max_delay_s
        ):
            return self.flush()
        return None

    def flush(self) -> str | None:
        """Return and clear everything buffered (None when empty)."""
        if not self._tokens:
            return None
        batch = "".join(self._tokens)
        self._tokens = []
        return batch
