"""MAX_CONCURRENT_INVOCATIONS: HealthyBusy at capacity, 503 server_busy beyond it, slots always returned."""

from __future__ import annotations

import threading


from bedrock.server.capacity import InvocationSlots
from testkit import loopback


def test_slots_count_and_refuse():
    slots = InvocationSlots(2)
    assert slots.try_acquire() and slots.try_acquire() and slots.busy
    assert not slots.try_acquire()
    slots.release()
    assert not slots.busy and slots.try_acquire()


def test_capacity_over_http(make_server, session_id):
    live = make_server({"MAX_CONCURRENT_INVOCATIONS": "2", "OFFLINE_TOKEN_DELAY_MS": "50"})
    started = threading.Barrier(3)
    results: list[bytes] = []

    def hold(i: int) -> None:
        payload = {"prompt": "Tell me about the sea", "session_id": f"{session_id}-{i}", "stream_tokens": True}
        with loopback.Client(timeout=30) as client, client.stream("POST", live.url + "/stream", json=payload) as response:
            body = b""
            for chunk in response.iter_raw():
                if not body:
                    started.wait()
                body += chunk
            results.append(body)

    holders = [threading.Thread(target=hold, args=(i,)) for i in range(2)]
    for thread in holders:
        thread.start()
    started.wait()  # both streams are open
    assert loopback.get(live.url + "/ping", timeout=5).json()["status"] == "HealthyBusy"
    refused = loopback.post(live.url + "/invocations", json={"prompt": "hi", "session_id": session_id}, timeout=10)
    assert refused.status_code == 503
    assert refused.json()["error"] == {"code": "server_busy", "message": "The server is at capacity; retry shortly.",
                                       "type": "ServerBusy", "retryable": True}
    for thread in holders:
        thread.join(30)
    assert all(b"event: agent_end" in body for body in results)
    assert loopback.get(live.url + "/ping", timeout=5).json()["status"] == "Healthy"
    ok = loopback.post(live.url + "/invocations", json={"prompt": "What is 2 + 2?", "session_id": session_id}, timeout=30)
    assert ok.status_code == 200 and ok.json()["output"] == "The result of 2 + 2 is 4."
