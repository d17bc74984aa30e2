"""The error type: an ordinary exception that survives every way Python raises it."""

from __future__ import annotations

import pickle
from contextlib import asynccontextmanager, contextmanager

import pytest

from bedrock.errors import AgentError, classify, status_for
from bedrock.sessions import SessionBusy

BUSY = AgentError("session_busy", "Another turn is running.", "SessionBusy", True, 409)


def test_it_passes_through_context_managers_as_itself():
    @contextmanager
    def sync_block():
        yield

    with pytest.raises(AgentError) as raised:
        with sync_block():
            raise BUSY
    assert raised.value is BUSY and raised.value.__traceback__ is not None


async def test_it_passes_through_async_context_managers_and_chains():
    @asynccontextmanager
    async def async_block():
        yield

    with pytest.raises(AgentError) as raised:
        async with async_block():
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise BUSY from inner
    assert isinstance(raised.value.__cause__, KeyError)


def test_fields_are_read_only_and_it_pickles():
    with pytest.raises(AttributeError):
        BUSY.code = "other"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(BUSY))
    assert copy == BUSY and (copy.code, copy.retryable, copy.status) == ("session_busy", True, 409)
    assert str(BUSY) == "session_busy: Another turn is running."
    assert BUSY.to_dict() == {"error": {"code": "session_busy", "message": "Another turn is running.",
                                        "type": "SessionBusy", "retryable": True}}


def test_subclasses_and_classification():
    busy = SessionBusy("session_busy", "x", "SessionBusy", True, 409)
    assert classify(busy) is busy and status_for("session_busy") == 409
    assert classify(RuntimeError("secret /srv/path")).message == "The agent failed unexpectedly; see the server logs."


def test_every_error_reply_has_one_shape():
    from bedrock.errors import error_body
    from bedrock.payload import PayloadError

    keys = {"code", "message", "type", "retryable"}
    assert set(BUSY.to_dict()["error"]) == keys
    assert set(PayloadError("bad", [{"field": "prompt", "message": "x"}]).to_dict()["error"]) == keys | {"details"}
    assert set(error_body("server_busy", "m", "ServerLimit", True)["error"]) == keys
