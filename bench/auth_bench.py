"""What owning sessions and verifying tokens cost a turn: each check against one whole turn, same run.

The baseline is one turn of the real agent (offline Bedrock endpoint, SQLite memory, a calculator round
trip), measured here. Rows: the ownership check as every turn after a session's first pays it (cached), the
first turn's claim (a SQLite write), and an RS256 bearer token's verification with its JWKS cached.

    python -m bench.auth_bench [--turns 200] [--checks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from bedrock.core.build import build_agent
from bedrock.config import Settings
from bedrock.server.auth import TokenVerifier
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from bedrock.core.ownership import SessionOwners
from bedrock.store.sqlite import SqliteOwners, ThreadedSqliteSaver
from bedrock.wire.request import parse_request


async def per_call_us(call, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await call(i)
    return (time.perf_counter() - started) / count * 1e6


async def main(turns: int, checks: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="auth-bench-"))
    endpoint = OfflineBedrockEndpoint().start()
    try:
        agent = build_agent(Settings(memory_path=str(folder / "turns.sqlite")), endpoint.url)
        times = []
        for i in range(turns):
            request = parse_request({"prompt": f"What is {i} * 3?", "session_id": f"s{i % 10}", "actor_id": "alice"})
            started = time.perf_counter()
            await agent.invoke(request)
            times.append((time.perf_counter() - started) * 1e6)
        await agent.drain()
        turn_us = statistics.median(times)
    finally:
        endpoint.stop()

    owners = SessionOwners(SqliteOwners(ThreadedSqliteSaver.open(folder / "owners.sqlite")))
    first_us = await per_call_us(lambda i: owners.check(f"new-{i}", "alice"), max(1, checks // 20))
    await owners.check("known", "alice")
    cached_us = await per_call_us(lambda i: owners.check("known", "alice"), checks)

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key())), "kid": "k1", "alg": "RS256"}
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    verifier = TokenVerifier(Settings(auth_mode="jwt", jwt_jwks_file=str(folder / "jwks.json"),
                                      jwt_issuer="https://issuer.test/", jwt_audience="agent"))
    token = "Bearer " + jwt.encode({"sub": "alice", "iss": "https://issuer.test/", "aud": "agent",
                                    "exp": int(time.time()) + 3600}, private, "RS256", headers={"kid": "k1"})
    verify_us = await per_call_us(lambda i: verifier.actor(token), max(1, checks // 10))

    rows = [
        ("one whole turn (baseline: offline endpoint, SQLite, tool round trip)", turn_us),
        ("ownership check, a session's later turns (cached)", cached_us),
        ("ownership claim, a session's first turn (SQLite write)", first_us),
        ("bearer token verification, RS256, JWKS cached (AUTH_MODE=jwt)", verify_us),
    ]
    lines = ["| per turn | µs | share of a turn |", "|---|---|---|"]
    lines += [f"| {label} | {us:,.1f} | {us / turn_us:.2%} |" for label, us in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--checks", type=int, default=20_000)
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.ERROR)
    print(asyncio.run(main(args.turns, args.checks)))
