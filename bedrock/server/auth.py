"""Who is calling. `AUTH_MODE=none`: the payload names its actor (a trusted caller, e.g. an IAM-signed backend).
`AUTH_MODE=jwt`: the actor is a claim (`sub` by default) of a bearer token verified here with PyJWT.

On AgentCore with an inbound JWT authorizer, AgentCore validates the token first and forwards the
`Authorization` header to the container; verifying it again here is what lets the container *trust* the
identity (the header is the only part of the request an end user cannot choose freely).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from bedrock.config import Settings
from bedrock.wire.ids import ID_PATTERN, MAX_ACTOR_ID
from bedrock.errors import ActorForbidden, Unauthorized
from bedrock.server.responses import error_response

if TYPE_CHECKING:
    import jwt

logger = logging.getLogger(__name__)

VERIFIED_ACTOR = "verified_actor"  # key in the ASGI scope's per-request state


# What `actor_from_claim` makes of a subject that is not an actor id. A subject of this very form is digested too:
# otherwise a token whose subject is `jwt-<digest of "auth0|42">` would be the same actor as `auth0|42`.
_DIGESTED = re.compile(r"jwt-[0-9a-f]{40}")


def actor_from_claim(value: Any) -> str:
    """The actor id for a token's claim: itself if it is a valid actor id, else a stable digest of it.

    Identity providers' subjects may hold characters actor ids may not (`auth0|123`); a digest keeps one
    subject one actor without letting a crafted subject reach paths or other actors' ids. Digests live in their
    own namespace (`jwt-` and 40 hex digits), which no subject reaches unhashed. An empty claim is no identity.
    """
    if not isinstance(value, (str, int)) or isinstance(value, bool):  # null, true, an object: no one in particular
        raise Unauthorized("The token's subject is not a string.")
    text = str(value)
    if not text.strip():
        raise Unauthorized("The token's subject is empty.")
    if re.fullmatch(ID_PATTERN, text) and len(text) <= MAX_ACTOR_ID and not _DIGESTED.fullmatch(text):
        return text
    return "jwt-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class TokenVerifier:
    """Verifies bearer tokens against a JWKS (a file, or a URL fetched off the event loop), cached.

    A token whose `kid` is not in the cached set triggers one reload (keys rotate), at most once per
    `refresh_s`, so a stream of made-up `kid`s cannot turn into a stream of fetches.
    """

    def __init__(self, settings: Settings) -> None:
        # Imported here: PyJWT and cryptography cost a cold start ~25 ms, and only AUTH_MODE=jwt needs them.
        import jwt

        self._jwt = jwt
        self.settings = settings
        self.algorithms = list(settings.jwt_algorithms)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at = float("-inf")
        self._reload_lock = asyncio.Lock()
        # PyJWKClient does the fetching (timeouts, headers, errors); its blocking call runs on a thread.
        self._client = (jwt.PyJWKClient(settings.jwt_jwks_url, cache_jwk_set=False, timeout=5)
                        if settings.jwt_jwks_url else None)
        if settings.jwt_jwks_file:
            self._keys = self._parse(json.loads(Path(settings.jwt_jwks_file).read_text()))  # fail at startup
            self._loaded_at = time.monotonic()

    def _parse(self, data: dict[str, Any]) -> dict[str | None, jwt.PyJWK]:
        return {key.key_id: key for key in self._jwt.PyJWKSet.from_dict(data).keys}

    async def _reload(self) -> None:
        async with self._reload_lock:
            if time.monotonic() - self._loaded_at < self.settings.jwt_jwks_refresh_s:
                return  # reloaded recently (maybe while we waited for the lock)
            self._loaded_at = time.monotonic()
            try:
                if self._client is not None:
                    data = await asyncio.to_thread(self._client.fetch_data)
                else:
                    data = json.loads(await asyncio.to_thread(Path(self.settings.jwt_jwks_file).read_text))
                self._keys = self._parse(data)
            except Exception:
                logger.exception("could not reload the JWKS; keeping the keys already loaded")

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._reload()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("The token was signed with an unknown key.")
        return key

    async def actor(self, authorization: str | None) -> str:
        """The verified actor id of an `Authorization: Bearer …` header; raises Unauthorized."""
        return (await self.verify(authorization))[0]

    async def verify(self, authorization: str | None) -> tuple[str, float]:
        """The verified actor id of an `Authorization: Bearer …` header, and when its token expires (epoch seconds,
        the leeway included: a WebSocket holds its actor only until then); raises Unauthorized."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("A bearer token is required.")
        token = token.strip()
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is malformed.") from None
        if header.get("alg") not in self.algorithms:
            raise Unauthorized("The token's signing algorithm is not accepted.")
        key = await self._key(header.get("kid"))
        claim = self.settings.jwt_actor_claim
        required = ["exp", "iss", claim] + (["aud"] if self.settings.jwt_audience else [])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience or None,
                leeway=self.settings.jwt_leeway_s,
                options={"require": required, "verify_aud": bool(self.settings.jwt_audience)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.PyJWTError as error:
            logger.info("refused a bearer token: %s", error)
            raise Unauthorized("The token is not valid for this agent.") from None
        return actor_from_claim(claims[claim]), float(claims["exp"]) + self.settings.jwt_leeway_s


class BearerAuth:
    """Pure ASGI middleware: on the invocation routes, a verified token or 401; the actor goes in the scope.

    Outermost, so an unauthenticated caller's body is not even read. `/ping` and other routes pass.
    """

    def __init__(self, app: ASGIApp, paths: frozenset[str], verifier: TokenVerifier | None) -> None:
        self.app = app
        self.paths = paths
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.verifier is None or scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            actor = await self.verifier.actor(authorization)
        except Unauthorized as error:
            response = error_response(error, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[VERIFIED_ACTOR] = actor
        await self.app(scope, receive, send)


def verified_actor(scope: Scope) -> str | None:
    """The actor BearerAuth verified for this request, if any."""
    return scope.get("state", {}).get(VERIFIED_ACTOR)


def bind_actor(payload: dict[str, Any], verified: str) -> None:
    """Refuse a payload whose `actor_id` or `custom_data.user_id` names anyone but the verified actor."""
    named = [payload.get("actor_id")]
    custom = payload.get("custom_data")
    if isinstance(custom, dict) and custom.get("user_id") is not None:
        named.append(str(custom["user_id"]))
    if any(name is not None and name != verified for name in named):
        raise ActorForbidden()
