"""httpx for the tests' servers on 127.0.0.1: the same calls, with one SSL context made once.

httpx builds an SSL context from a CA bundle for every Client, so for every `httpx.get` / `post` / `stream`,
though the URL is plain HTTP: 42 ms of CPU here with SSL_CERT_FILE naming the system's bundle, 25 ms with
certifi's. The suite made ~2,000 of them (a starting server polled every 50 ms among them), a tenth of its CPU.
These pass one context as `verify`, never shown a handshake (every URL is http://127.0.0.1); nothing else
differs from httpx: each call still opens its own connection, as the tests expect.
"""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any

import httpx

TLS = ssl.create_default_context()

# partial: a caller's own `verify` still wins, as with httpx.
get = partial(httpx.get, verify=TLS)
post = partial(httpx.post, verify=TLS)
request = partial(httpx.request, verify=TLS)
stream = partial(httpx.stream, verify=TLS)


class Client(httpx.Client):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"verify": TLS, **kwargs})


class AsyncClient(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"verify": TLS, **kwargs})
