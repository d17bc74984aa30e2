"""The error catalog, and its exception: an ordinary one that survives every way Python raises it."""

from __future__ import annotations

import pickle
from contextlib import asynccontextmanager, contextmanager

import pytest

from bedrock.errors import CATALOG, AgentError, PayloadError, SessionBusy, classify, status_for

BUSY = AgentError("session_busy", "Another turn is running.")


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
    busy = SessionBusy("x")
    assert classify(busy) is busy and status_for("session_busy") == 409 and busy.type == "SessionBusy"
    assert pickle.loads(pickle.dumps(busy)) == busy and type(pickle.loads(pickle.dumps(busy))) is SessionBusy
    assert classify(RuntimeError("secret /srv/path")).message == "The agent failed unexpectedly; see the server logs."


def test_every_error_reply_has_one_shape():
    keys = {"code", "message", "type", "retryable"}
    assert set(BUSY.to_dict()["error"]) == keys
    assert set(PayloadError("bad", [{"field": "prompt", "message": "x"}]).to_dict()["error"]) == keys | {"details"}
    for code, kind in CATALOG.items():  # every code: its status, retryable and type from its one entry
        error = AgentError(code)
        assert error.to_dict() == {"error": {"code": code, "message": kind.message, "type": kind.type,
                                             "retryable": kind.retryable}}
        assert error.status == kind.status == status_for(code) and 400 <= kind.status < 600
    with pytest.raises(ValueError):
        AgentError("not_a_code")  # a code that is not in the catalog cannot be raised
