import json

import pytest

from bedrock.streaming_utils import SSEDecoder, TokenBuffer, format_sse_event, parse_sse_event


def test_format_is_event_data_id_with_one_line_json():
    frame = format_sse_event("agent_step", {"step": 2, "content": "a\nb"}, 3)
    assert frame == 'event: agent_step\ndata: {"step":2,"content":"a\\nb"}\nid: 3\n\n'
    assert frame.type == "agent_step" and frame.data == {"step": 2, "content": "a\nb"} and frame.id == 3


def test_format_without_id_and_non_ascii_is_escaped():
    frame = format_sse_event("llm_token", {"token": "é\u2028"})
    assert frame == 'event: llm_token\ndata: {"token":"\\u00e9\\u2028"}\n\n'
    assert frame.isascii()


def test_parse_round_trip_and_read_through_to_data():
    frame = format_sse_event("llm_token", {"token": "hi"}, 7)
    parsed = parse_sse_event(frame)
    assert parsed == {"type": "llm_token", "data": {"token": "hi"}, "id": 7}
    assert parsed["token"] == "hi"
    with pytest.raises(KeyError):
        parsed["missing"]


def test_parse_accepts_crlf_bytes_and_comments():
    parsed = parse_sse_event(b": ping\r\nevent: agent_end\r\ndata: {\"output\": \"x\"}\r\n\r\n")
    assert parsed["type"] == "agent_end" and parsed["output"] == "x"


@pytest.mark.parametrize("bad", ["", "event: x\n", "event: x\ndata: {not json\n\n", b"\xff\xfe"])
def test_parse_errors_are_error_events(bad):
    parsed = parse_sse_event(bad)
    assert parsed["type"] == "error"
    assert parsed["data"]["error"].startswith("Parse error:")


def test_decoder_reassembles_events_split_anywhere():
    frames = [format_sse_event("agent_step", {"content": "naïve ☃", "n": i}, i) for i in range(1, 4)]
    raw = (": ping\n\n" + "".join(frames)).encode()
    for cut in range(1, len(raw)):
        decoder = SSEDecoder()
        events = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:])
        assert [e["data"]["n"] for e in events] == [1, 2, 3]
        assert events[0]["data"]["content"] == "naïve ☃"


def test_decoder_handles_cr_lf_split_between_chunks():
    decoder = SSEDecoder()
    events = decoder.feed(b"event: a\r\ndata: 1\r") + decoder.feed(b"\n\r") + decoder.feed(b"\n")
    assert events == [{"type": "a", "data": 1}]


def test_decoder_keeps_non_json_data_as_text():
    assert SSEDecoder().feed("data: hello\ndata: world\n\n") == [{"type": "message", "data": "hello\nworld"}]


def test_token_buffer_flushes_on_size_and_is_lossless():
    buffer = TokenBuffer(buffer_size=3, max_delay_ms=None)
    out = [buffer.add(t) for t in "abcdefg"]
    assert out == [None, None, "abc", None, None, "def", None]
    assert buffer.flush() == "g"
    assert buffer.flush() is None


def test_token_buffer_flushes_on_age():
    now = [0.0]
    buffer = TokenBuffer(buffer_size=100, max_delay_ms=50, clock=lambda: now[0])
    assert buffer.add("a") is None
    now[0] = 0.049
    assert buffer.add("b") is None
    now[0] = 0.050
    assert buffer.add("c") == "abc"
    assert len(buffer) == 0


def test_token_buffer_rejects_zero_size():
    with pytest.raises(ValueError):
        TokenBuffer(buffer_size=0)


def test_sse_event_is_a_str_with_attributes():
    frame = format_sse_event("agent_end", {"metrics": {"tokens": 3}}, 9)
    assert "agent_end" in frame and isinstance(frame, str)
    assert frame.data["metrics"]["tokens"] == 3
    assert json.loads(frame.split("\n")[1][len("data: "):]) == frame.data


def test_token_frame_matches_the_generic_encoder():
    from bedrock.wire.events import LLM_TOKEN, encode_frame, token_frame

    for token in ["plain", 'quo"te\\', "naïve ☃ \u2028 \n\t", ""]:
        fast, generic = token_frame(token, 3, 9), encode_frame(LLM_TOKEN, {"token": token, "step": 3, "text": token}, 9)
        assert fast == generic and fast.data == generic.data and fast.id == 9 and fast.type == LLM_TOKEN


def test_a_frame_is_strict_json_whatever_its_data_holds():
    """A graph's own data may hold a NaN (a tool's float result, say): the frame writes null, which every strict
    parser (a browser's JSON.parse) reads, not `NaN`, which none does."""
    from bedrock.wire.events import encode_frame

    frame = encode_frame("agent_step", {"values": [1.5, float("nan"), {"x": float("inf")}]}, 3)
    data = frame.split("\ndata: ")[1].split("\n")[0]
    assert json.loads(data, parse_constant=lambda name: pytest.fail(f"{name} in a frame")) == {
        "values": [1.5, None, {"x": None}]}
