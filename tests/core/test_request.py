import pytest

from bedrock.wire.request import parse_request
from bedrock.errors import PayloadError


def test_defaults_and_generated_session():
    request = parse_request({"prompt": "hi"})
    assert request.session_id.startswith("session-") and request.actor_id == "default-user"
    assert request.stream is False and request.stream_tokens is False


def test_session_from_header_and_actor_from_custom_data():
    request = parse_request({"prompt": "hi", "custom_data": {"user_id": "123"}}, header_session_id="abc-1")
    assert request.session_id == "abc-1" and request.actor_id == "123"


def test_payload_ids_win():
    request = parse_request(
        {"prompt": "hi", "session_id": "s1", "actor_id": "a1", "custom_data": {"user_id": "u"}},
        header_session_id="h",
    )
    assert (request.session_id, request.actor_id) == ("s1", "a1")


@pytest.mark.parametrize(
    "payload, field",
    [
        ([], "payload"),
        ("prompt", "payload"),
        ({}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 40_000}, "prompt"),
        ({"prompt": "x", "session_id": "../etc"}, "session_id"),
        ({"prompt": "x", "session_id": "s" * 101}, "session_id"),
        ({"prompt": "x", "actor_id": "a/b"}, "actor_id"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
        ({"prompt": "x", "stream": 1}, "stream"),
        ({"prompt": "x", "preferences": ["a"]}, "preferences"),
        ({"prompt": "x", "custom_data": {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": 1}}}}}}}}}, "custom_data"),
        ({"prompt": "x", "custom_data": {"big": "x" * 20_000}}, "custom_data"),
        ({"prompt": "x", "surprise": 1}, "surprise"),
        ({"prompt": "x", "custom_data": {"user_id": "a b"}}, "custom_data.user_id"),
    ],
)
def test_invalid_payloads_name_the_field(payload, field):
    with pytest.raises(PayloadError) as info:
        parse_request(payload)
    body = info.value.to_dict()["error"]
    assert body["code"] == "invalid_payload"
    assert field in body["message"]


def test_invalid_header_session_is_refused():
    with pytest.raises(PayloadError, match="session header"):
        parse_request({"prompt": "x"}, header_session_id="a/b")


def test_long_runtime_session_header_maps_to_a_stable_memory_session():
    header = "r" * 200
    first = parse_request({"prompt": "x"}, header_session_id=header).session_id
    assert first == parse_request({"prompt": "y"}, header_session_id=header).session_id
    assert len(first) <= 100 and first.startswith("rt-")
    assert parse_request({"prompt": "x"}, header_session_id="s" * 99 + "x").session_id != first


def test_the_agentcore_cli_chats_fields_are_ours_by_name_or_ignored_by_name():
    request = parse_request({"prompt": "hi", "agentName": "langgraph_agent", "sessionId": "chat-1", "userId": "ada"})
    assert (request.session_id, request.actor_id, request.prompt) == ("chat-1", "ada", "hi")
    same = parse_request({"prompt": "hi", "sessionId": "chat-1", "session_id": "chat-1"})
    assert same.session_id == "chat-1"
    with pytest.raises(PayloadError) as clash:
        parse_request({"prompt": "hi", "sessionId": "chat-1", "session_id": "chat-2"})
    assert clash.value.details == [{"field": "sessionId", "message": "names another session_id than the payload's "
                                    "'session_id'"}]
    with pytest.raises(PayloadError) as bad:  # an alias is validated as the field it stands for
        parse_request({"prompt": "hi", "userId": "not an id!"})
    assert bad.value.details[0]["field"] == "actor_id"
    with pytest.raises(PayloadError) as unknown:  # not a blanket "ignore unknown"
        parse_request({"prompt": "hi", "agentname": "x"})
    assert unknown.value.details[0] == {"field": "agentname", "message": "unknown field"}


@pytest.mark.parametrize("payload, field", [
    ({"session_id": "s", "resume": {"interrupt_id": "approval-1", "approved": True, "args": {"n": float("nan")}}},
     "resume.args.n"),
    ({"prompt": "hi", "custom_data": {"deep": [{"x": float("inf")}]}}, "custom_data.deep.0.x"),
    ({"prompt": "hi", "preferences": {"t": float("-inf")}}, "preferences.t"),
])
def test_in_process_payloads_are_strict_json_too(payload, field):
    """`stream_agent` / `ainvoke_agent` callers pass dicts, not JSON: the same door refuses what JSON cannot write."""
    with pytest.raises(PayloadError) as refused:
        parse_request(payload)
    assert refused.value.details == [{"field": field, "message": "not a finite number (JSON has no NaN or Infinity)"}]
