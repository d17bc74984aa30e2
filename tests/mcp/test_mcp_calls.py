"""CallBounds: every MCP call within its time, its failures as error results the model reads, its result cut to
MAX_TOOL_RESULT_BYTES with a marker — and a cancellation never turned into a result."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langchain_mcp_adapters.interceptors import MCPToolCallRequest
from mcp.shared.exceptions import McpError
from mcp.types import AudioContent, CallToolResult, ErrorData, ImageContent, TextContent

from bedrock.mcp.auth import CredentialError
from bedrock.mcp.calls import CallBounds

REQUEST = MCPToolCallRequest(name="lookup", args={"q": "x"}, server_name="gw")


def answering(result: Any = None, error: BaseException | None = None, delay: float = 0.0) -> Any:
    """The call CallBounds makes (a kept session's, in the runtime), answering as told."""
    async def call(server: str, name: str, arguments: dict[str, Any]) -> Any:
        assert (server, name, arguments) == ("gw", "lookup", {"q": "x"})
        await asyncio.sleep(delay)
        if error is not None:
            raise error
        return result
    return call


def unused(request: MCPToolCallRequest) -> Any:
    raise AssertionError("the adapters' own call (a session per call) is not made")


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_a_call_past_its_time_is_an_error_result_naming_server_tool_and_bound():
    result = await CallBounds(answering(delay=5), 0.05, 1000)(REQUEST, unused)
    assert result.isError and text(result) == "Error: the MCP server 'gw' did not answer lookup within 0.05 s"


@pytest.mark.parametrize("error, named", [
    (httpx.ConnectError("[Errno 111] connect to http://h/mcp?key=SECRET"), "(ConnectError)"),
    (ExceptionGroup("tg", [httpx.ReadError("at http://h/?key=SECRET")]), "(ReadError)"),
    (httpx.HTTPStatusError("503 at ?key=SECRET", request=httpx.Request("POST", "http://h/?key=SECRET"),
                           response=httpx.Response(503)), "(HTTP 503)"),
    (McpError(ErrorData(code=-32602, message="Invalid params: b is required")), "(Invalid params: b is required)"),
    (CredentialError("the token endpoint refused the client credentials (invalid_client)"),
     "(no credentials: the token endpoint refused the client credentials (invalid_client))"),
])
async def test_a_failure_is_an_error_result_with_its_type_never_its_message(error, named, caplog):
    result = await CallBounds(answering(error=error), 5, 1000)(REQUEST, unused)
    assert result.isError and text(result) == f"Error: the MCP server 'gw' failed to run lookup {named}"
    assert "SECRET" not in caplog.text and "gw" in caplog.text


async def test_a_cancellation_goes_on_and_is_never_a_result():
    call = asyncio.ensure_future(CallBounds(answering(delay=5), 5, 1000)(REQUEST, unused))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_tools_own_error_is_marked_once_and_an_empty_one_said():
    said = await CallBounds(answering(CallToolResult(
        content=[TextContent(type="text", text="no such city")], isError=True)), 5, 1000)(REQUEST, unused)
    assert text(said) == "Error: no such city"
    marked = await CallBounds(answering(CallToolResult(
        content=[TextContent(type="text", text="Error: bad")], isError=True)), 5, 1000)(REQUEST, unused)
    assert text(marked) == "Error: bad"
    empty = await CallBounds(answering(CallToolResult(content=[], isError=True)), 5, 1000)(REQUEST, unused)
    assert text(empty) == "Error: the tool failed and said nothing more"


async def test_a_result_within_the_bound_is_as_the_server_sent_it():
    sent = CallToolResult(content=[TextContent(type="text", text="é" * 100)], structuredContent={"n": 1})
    assert await CallBounds(answering(sent), 5, 300)(REQUEST, unused) == sent


async def test_a_result_over_the_bound_is_cut_at_a_whole_character_with_a_marker():
    sent = CallToolResult(content=[TextContent(type="text", text="é" * 10_000)],  # 20,000 bytes
                          structuredContent={"rows": ["r"] * 5000})
    result = await CallBounds(answering(sent), 5, 1001)(REQUEST, unused)
    kept, marker = result.content
    assert isinstance(kept, TextContent) and kept.text == "é" * 500  # 1,000 bytes: not half of the 501st
    assert isinstance(marker, TextContent) and marker.text.startswith("[cut: the tool's result was 45,0")
    assert "the first 1,000 are kept (MAX_TOOL_RESULT_BYTES=1,001)" in marker.text
    assert result.structuredContent is None  # kept with the conversation: whole or not at all


async def test_an_image_is_never_cut_in_half_and_audio_becomes_a_note():
    image = ImageContent(type="image", data="A" * 4000, mimeType="image/png")
    result = await CallBounds(answering(CallToolResult(
        content=[TextContent(type="text", text="a chart:"), image])), 5, 1000)(REQUEST, unused)
    assert [type(block) for block in result.content] == [TextContent, TextContent]
    assert result.content[0].text == "a chart:" and "[cut:" in result.content[1].text
    audio = await CallBounds(answering(CallToolResult(
        content=[AudioContent(type="audio", data="AAAA", mimeType="audio/wav")])), 5, 1000)(REQUEST, unused)
    assert text(audio) == "[audio (audio/wav) omitted: not passed to the model]"
