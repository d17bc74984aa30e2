"""Properties (hypothesis): framing round-trips, decoding ignores chunking, TokenBuffer loses nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bedrock.streaming_utils import SSEDecoder, TokenBuffer, format_sse_event, parse_sse_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
event_types = st.sampled_from(["agent_start", "agent_step", "llm_token", "agent_end", "error"])


@given(event_types, json_values, st.integers(min_value=1, max_value=10**6))
def test_format_then_parse_round_trips(event_type, data, event_id):
    frame = format_sse_event(event_type, data, event_id)
    assert frame.count("\n") == 4 and frame.isascii()  # three lines + the blank one, whatever the data holds
    assert parse_sse_event(frame) == {"type": event_type, "data": data, "id": event_id}


@settings(max_examples=60)
@given(st.lists(st.tuples(event_types, json_values), min_size=1, max_size=6), st.data())
def test_decoder_is_independent_of_chunking(events, data):
    raw = "".join(format_sse_event(t, d, i + 1) for i, (t, d) in enumerate(events)).encode()
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=12)))
    decoder, decoded, start = SSEDecoder(), [], 0
    for cut in [*cuts, len(raw)]:
        decoded += decoder.feed(raw[start:cut])
        start = cut
    assert decoded == [{"type": t, "data": d, "id": i + 1} for i, (t, d) in enumerate(events)]


@given(st.lists(st.text(), max_size=50), st.integers(min_value=1, max_value=12), st.lists(st.floats(0, 0.2), max_size=50))
def test_token_buffer_is_lossless_and_ordered(tokens, size, steps):
    now = [0.0]
    buffer = TokenBuffer(buffer_size=size, max_delay_ms=50, clock=lambda: now[0])
    out = []
    for i, token in enumerate(tokens):
        now[0] += steps[i] if i < len(steps) else 0.0
        batch = buffer.add(token)
        if batch is not None:
            out.append(batch)
    rest = buffer.flush()
    if rest is not None:
        out.append(rest)
    assert "".join(out) == "".join(tokens)
    assert len(buffer) == 0
