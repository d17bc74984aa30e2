"""Deployment files: .bedrock_agentcore.yaml (through the starter toolkit's own loader), Dockerfile, .dockerignore,
and requirements.txt agreeing with pyproject.toml. No Docker engine is needed: the files are parsed."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from bedrock_agentcore_starter_toolkit.utils.runtime.config import load_config
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CMD = ["opentelemetry-instrument", "python", "-m", "bedrock.agent_runtime"]


@pytest.fixture(scope="module")
def agent():
    config = load_config(ROOT / ".bedrock_agentcore.yaml", autofill_missing_aws=False)
    assert config.default_agent == "langgraph_agent"
    return config.get_agent_config()


def test_agentcore_config(agent):
    assert (agent.name, agent.entrypoint) == ("langgraph_agent", "bedrock/agent_runtime.py")
    assert (agent.deployment_type, agent.platform, agent.container_runtime) == ("container", "linux/arm64", "docker")
    assert agent.source_path is None  # the Dockerfile at the project root is the one `agentcore launch` builds
    assert agent.aws.region == "us-east-1" and agent.aws.account is None
    assert agent.aws.execution_role_auto_create and agent.aws.ecr_auto_create
    assert agent.aws.network_configuration.network_mode == "PUBLIC"
    assert agent.aws.protocol_configuration.server_protocol == "HTTP"
    assert agent.aws.observability.enabled
    assert (agent.memory.mode, agent.memory.event_expiry_days) == ("STM_ONLY", 30)


def test_agentcore_config_validates(agent):
    assert agent.validate(for_local=True) == []
    # The account is the one thing left for the toolkit to fill in from the caller's credentials.
    assert agent.validate() == ["Missing 'aws.account' for cloud deployment"]


def test_entrypoint_is_the_module_the_image_runs(agent):
    assert (ROOT / agent.entrypoint).is_file()
    assert agent.entrypoint.removesuffix(".py").replace("/", ".") == CMD[-1]
    from bedrock_agentcore.runtime import BedrockAgentCoreApp

    from bedrock.agent_runtime import app

    assert isinstance(app, BedrockAgentCoreApp)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_dockerfile():
    instructions = dockerfile()
    keywords = [keyword for keyword, _ in instructions]
    args_of = lambda name: [args for keyword, args in instructions if keyword == name]  # noqa: E731

    assert instructions[0][0] == "FROM" and re.search(r"python:?3\.11", instructions[0][1])
    assert args_of("WORKDIR") == ["/app"]
    env = env_of(instructions)
    assert env["MODEL_PROVIDER"] == "bedrock"
    assert env["DOCKER_CONTAINER"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["AGENT_MEMORY_PATH"].startswith("/tmp/")  # writable by the non-root user

    runs = args_of("RUN")
    install = next(i for i, run in enumerate(runs) if re.search(r"pip install .*-r requirements\.txt", run))
    assert "COPY requirements.txt requirements.txt" in [f"{k} {a}" for k, a in instructions[: keywords.index("RUN")]]
    assert any("aws-opentelemetry-distro>=0.18.0,<1.0.0" in run for run in runs[install:])

    user = args_of("USER")[-1]
    assert user not in ("root", "0") and any(re.search(rf"useradd .*-u 1000 {user}\b", run) for run in runs)
    assert keywords.index("USER") < keywords.index("CMD")
    assert "8080" in " ".join(args_of("EXPOSE")).split()
    assert "COPY . ." in [f"{k} {a}" for k, a in instructions]
    assert keywords[-1] == "CMD" and json.loads(args_of("CMD")[0]) == CMD


def dockerignored(path: str) -> bool:
    """Docker's matching: patterns anchored at the context root, `**` any depth, a folder excludes its contents."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not modelled here"
        regex = re.escape(line.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", r"[\1]", regex)
        patterns.append(re.compile(regex))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "tests/test_deploy.py", "bench/memory_bench.py", "__pycache__/x.pyc",
     "bedrock/__pycache__/client.cpython-311.pyc", ".agent-memory/checkpoints.sqlite", "bedrock/x.sqlite",
     "checkpoints.sqlite-wal", ".pytest_cache/v", "docs/STREAMING_GUIDE.md", "testkit/serve.py",
     "agentcore/.env.local", "agentcore/.cli/checkpoints.sqlite"],
)
def test_dockerignore_excludes(path):
    assert dockerignored(path)


@pytest.mark.parametrize(
    "path",
    ["requirements.txt", "bedrock/agent_runtime.py", "bedrock/_pathfix.py", "bedrock/server/app.py",
     "bedrock/client/_client.py", "bedrock/client/_runtime.py", "Dockerfile"],
)
def test_dockerignore_keeps_what_the_image_runs(path):
    assert not dockerignored(path)


def normalised(requirement: str) -> tuple[str, frozenset[str], str, str]:
    parsed = Requirement(requirement)
    return canonicalize_name(parsed.name), frozenset(parsed.extras), str(parsed.specifier), str(parsed.marker or "")


def test_requirements_agree_with_pyproject():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = {normalised(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()}
    declared = {normalised(dep) for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert required == declared
