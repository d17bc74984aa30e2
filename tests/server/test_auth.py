"""AUTH_MODE=jwt: the actor is a verified token's subject; everything else is 401 (or 403 for another actor)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from bedrock.offline.background import BackgroundServer
from bedrock.config import ConfigError, Settings
from bedrock.errors import Unauthorized
from bedrock.server.auth import TokenVerifier, actor_from_claim
from testkit import loopback

ISSUER = "https://issuer.test/"
AUDIENCE = "agent-runtime"


class Keys:
    """A locally generated RSA key pair (and a stranger's), and tokens signed with them."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self, *extra: tuple[Any, str]) -> dict[str, Any]:
        keys = []
        for private, kid in ((self.private, "k1"), *extra):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def token(self, sub: str = "alice", *, key: Any = None, kid: str = "k1", **claims: Any) -> str:
        body = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key or self.private, "RS256",
                          headers={"kid": kid})

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."


def hs256_with_public_key(keys: Keys, claims: dict[str, Any]) -> str:
    """The key-confusion attack: HMAC-signed with the RSA public key (PEM) as the secret (PyJWT won't make it)."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'}).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(keys.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def jwks_file(keys: Keys, tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks()))
    return path


def bad_tokens(keys: Keys) -> dict[str, str | None]:
    now = int(time.time())
    claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300}
    return {
        "missing": None,
        "not bearer": "Basic YWxpY2U6c2VjcmV0",
        "garbage": "Bearer not-a-token",
        "expired": "Bearer " + keys.token(exp=now - 120),
        "wrong audience": "Bearer " + keys.token(aud="someone-else"),
        "no audience": "Bearer " + keys.token(aud=None),
        "wrong issuer": "Bearer " + keys.token(iss="https://evil.test/"),
        "alg none": "Bearer " + unsigned(claims),
        "unknown kid": "Bearer " + keys.token(key=keys.stranger, kid="k9"),
        "stranger's key, known kid": "Bearer " + keys.token(key=keys.stranger),
        "HS256 with the public key": "Bearer " + hs256_with_public_key(keys, claims),
        "no sub": "Bearer " + keys.token(sub=None),
    }


def jwt_settings(jwks_file: Path, **extra: Any) -> Settings:
    return Settings(auth_mode="jwt", jwt_jwks_file=str(jwks_file), jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **extra)


async def test_a_valid_token_names_the_actor(keys, jwks_file):
    verifier = TokenVerifier(jwt_settings(jwks_file))
    assert await verifier.actor("Bearer " + keys.token("alice")) == "alice"
    assert await verifier.actor("bearer " + keys.token("auth0|42")) == actor_from_claim("auth0|42")
    assert actor_from_claim("auth0|42").startswith("jwt-") and actor_from_claim("a/../b") != "a/../b"


async def test_no_subject_can_become_another_subjects_actor(keys, jwks_file):
    """`auth0|42` is not an actor id, so it becomes `jwt-<digest>`; a token whose subject *is* that digest used to
    pass through unchanged — the same actor, with the victim's sessions. Digests are a namespace of their own."""
    verifier = TokenVerifier(jwt_settings(jwks_file))
    victim = await verifier.actor("Bearer " + keys.token("auth0|42"))
    impostor = await verifier.actor("Bearer " + keys.token(victim))
    assert victim.startswith("jwt-") and impostor.startswith("jwt-") and impostor != victim
    assert await verifier.actor("Bearer " + keys.token("jwt-not-a-digest")) == "jwt-not-a-digest"  # ids stay ids
    for empty in ("", "  ", None, True, {"id": 1}):
        token = jwt.encode({"sub": empty, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
                           keys.private, "RS256", headers={"kid": "k1"})
        with pytest.raises(Unauthorized):  # every such token would otherwise be one and the same actor
            await verifier.actor("Bearer " + token)


async def test_every_bad_token_is_unauthorized(keys, jwks_file):
    verifier = TokenVerifier(jwt_settings(jwks_file))
    for name, header in bad_tokens(keys).items():
        with pytest.raises(Unauthorized):
            await verifier.actor(header)
        assert name  # each case raised


def test_config_refuses_what_cannot_be_safe(jwks_file):
    with pytest.raises(ConfigError):
        Settings.from_env({"AUTH_MODE": "jwt", "JWT_ISSUER": ISSUER})  # no keys
    with pytest.raises(ConfigError):
        Settings.from_env({"AUTH_MODE": "jwt", "JWT_JWKS_FILE": str(jwks_file)})  # no issuer
    for algorithms in ("none", "HS256", "RS256,HS256"):
        with pytest.raises(ConfigError):
            Settings.from_env({"JWT_ALGORITHMS": algorithms})


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[tuple[str, dict[str, Any]]]:
    served = {"jwks": keys.jwks(), "fetches": 0}

    async def jwks(_: Any) -> JSONResponse:
        served["fetches"] += 1
        return JSONResponse(served["jwks"])

    server = BackgroundServer(Starlette(routes=[Route("/jwks.json", jwks)]))
    url = server.start()
    yield url + "/jwks.json", served
    server.stop()


async def test_a_jwks_url_is_fetched_once_and_reloaded_for_a_new_kid(keys, jwks_server):
    url, served = jwks_server
    settings = Settings(auth_mode="jwt", jwt_jwks_url=url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_jwks_refresh_s=0)
    verifier = TokenVerifier(settings)
    for _ in range(5):
        assert await verifier.actor("Bearer " + keys.token("alice")) == "alice"
    assert served["fetches"] == 1  # cached
    served["jwks"] = keys.jwks((keys.stranger, "k2"))  # the issuer rotates in a new key
    assert await verifier.actor("Bearer " + keys.token("bob", key=keys.stranger, kid="k2")) == "bob"
    assert served["fetches"] == 2


async def test_made_up_kids_do_not_turn_into_fetches(keys, jwks_server):
    url, served = jwks_server
    verifier = TokenVerifier(Settings(auth_mode="jwt", jwt_jwks_url=url, jwt_issuer=ISSUER, jwt_jwks_refresh_s=60))
    for i in range(20):
        with pytest.raises(Unauthorized):
            await verifier.actor("Bearer " + keys.token(key=keys.stranger, kid=f"made-up-{i}"))
    assert served["fetches"] == 1  # the first load only; reloads at most once a minute


def test_over_http(make_server, keys, jwks_file, session_id):
    live = make_server({"AUTH_MODE": "jwt", "JWT_JWKS_FILE": str(jwks_file), "JWT_ISSUER": ISSUER,
                        "JWT_AUDIENCE": AUDIENCE})
    assert loopback.get(live.url + "/ping", timeout=10).status_code == 200  # /ping stays open
    alice = {"Authorization": "Bearer " + keys.token("alice")}
    bob = {"Authorization": "Bearer " + keys.token("bob")}

    def post(payload: dict[str, Any], headers: dict[str, str | None], path: str = "/invocations") -> httpx.Response:
        return loopback.post(live.url + path, json=payload, headers={k: v for k, v in headers.items() if v}, timeout=30)

    ok = post({"prompt": "My name is Alice", "session_id": session_id}, alice)
    assert ok.status_code == 200 and ok.json()["actor_id"] == "alice"
    for name, header in bad_tokens(keys).items():
        for path in ("/invocations", "/stream"):
            response = post({"prompt": "What's my name?", "session_id": session_id}, {"Authorization": header}, path)
            assert response.status_code == 401, (name, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
    claims_alice = post({"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice"}, bob)
    assert claims_alice.status_code == 403 and claims_alice.json()["error"]["code"] == "actor_forbidden"
    by_custom = post({"prompt": "hi", "session_id": session_id, "custom_data": {"user_id": "alice"}}, bob)
    assert by_custom.status_code == 403 and by_custom.json()["error"]["code"] == "actor_forbidden"
    by_cli_name = post({"prompt": "hi", "session_id": session_id, "userId": "alice"}, bob)  # the CLI chat's name
    assert by_cli_name.status_code == 403 and by_cli_name.json()["error"]["code"] == "actor_forbidden"
    in_her_session = post({"prompt": "What's my name?", "session_id": session_id}, bob)
    assert in_her_session.status_code == 403 and in_her_session.json()["error"]["code"] == "session_forbidden"
    mine = post({"prompt": "What's my name?", "session_id": session_id, "actor_id": "alice", "stream": True}, alice)
    assert b"Your name is Alice." in mine.content


def test_memories_are_the_token_s_actor_s_over_http(make_server, keys, jwks_file):
    live = make_server({"AUTH_MODE": "jwt", "JWT_JWKS_FILE": str(jwks_file), "JWT_ISSUER": ISSUER,
                        "JWT_AUDIENCE": AUDIENCE})
    alice = {"Authorization": "Bearer " + keys.token("alice")}
    bob = {"Authorization": "Bearer " + keys.token("bob")}

    def post(payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return loopback.post(live.url + "/invocations", json=payload, headers=headers, timeout=30)

    assert post({"prompt": "I prefer metric units"}, alice).status_code == 200
    listed = post({"action": "memories"}, alice).json()
    assert listed["actor_id"] == "alice" and [m["value"]["text"] for m in listed["memories"]] == [
        "I prefer metric units"]
    assert post({"action": "memories"}, bob).json()["memories"] == []
    for payload in ({"action": "memories", "actor_id": "alice"}, {"action": "forget", "all": True, "actor_id": "alice"}):
        refused = post(payload, bob)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "actor_forbidden"
    unauthorized = post({"action": "memories"}, {})
    assert unauthorized.status_code == 401
    key = listed["memories"][0]["key"]
    assert post({"action": "forget", "key": key}, bob).status_code == 404  # not his: as unknown as any other key
    assert post({"action": "forget", "key": key}, alice).json()["forgotten"] == 1
