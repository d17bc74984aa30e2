"""Deployment files: .bedrock_agentcore.yaml (through the starter toolkit's own loader), Dockerfile, .dockerignore,
and requirements.txt agreeing with pyproject.toml; which graph they serve (AGENT_GRAPH, a langgraph.json: the
examples). No Docker engine is needed: the files are parsed, and what the image's build runs is run here."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from bedrock_agentcore_starter_toolkit.utils.runtime.config import load_config
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bedrock.config import Settings
from bedrock.core.loader import GraphSource, find_graph, load_graph

ROOT = Path(__file__).resolve().parent.parent
CMD = ["opentelemetry-instrument", "python", "-m", "bedrock.agent_runtime"]
EXAMPLES = sorted(path.name for path in (ROOT / "examples").iterdir() if (path / "langgraph.json").is_file())


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
    assert (agent.memory.mode, agent.memory.event_expiry_days) == ("STM_AND_LTM", 30)


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
    # Built in /app; served from the agent's project folder (a build argument; the root by default).
    assert args_of("WORKDIR") == ["/app", "/app/${AGENT_PROJECT}"]
    assert args_of("ARG") == ["AGENT_PROJECT=.", "AGENT_GRAPH="]
    env = env_of(instructions)
    assert env["AGENT_GRAPH"] == "${AGENT_GRAPH}"  # empty by default: a langgraph.json, else the built-in agent
    assert env["PYTHONPATH"] == "/app"  # the package imports from the project folder too
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
    assert len(keywords) - 1 - keywords[::-1].index("WORKDIR") > keywords.index("COPY")  # after the project is in
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
     "bedrock/client/_client.py", "bedrock/client/_runtime.py", "Dockerfile", "examples/create_agent/agent.py",
     "examples/create_agent/langgraph.json", "examples/stategraph/agent.py", "examples/stategraph/langgraph.json"],
)
def test_dockerignore_keeps_what_the_image_runs(path):
    assert not dockerignored(path)


def normalised(requirement: str) -> tuple[str, frozenset[str], str, str]:
    parsed = Requirement(requirement)
    return canonicalize_name(parsed.name), frozenset(parsed.extras), str(parsed.specifier), str(parsed.marker or "")


def test_requirements_agree_with_pyproject():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = {normalised(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalised(dep) for dep in project["dependencies"]}
    assert required == declared


# --- Which graph: AGENT_GRAPH or a langgraph.json, by configuration alone ------------------------------------------


def test_the_examples_are_projects():
    assert EXAMPLES == ["create_agent", "stategraph"]
    for name in EXAMPLES:
        folder = ROOT / "examples" / name
        config = json.loads((folder / "langgraph.json").read_text())
        assert config == {"dependencies": ["."], "graphs": {"agent": "./agent.py:graph"}, "env": ".env"}
        assert {"agent.py", ".env.example", "requirements.txt", "README.md"} <= {p.name for p in folder.iterdir()}
        # requirements.txt: the runtime from the clone's root (a path, relative to the folder pip runs in), and
        # what agent.py imports, in ranges that agree with the runtime's own.
        lines = [line.strip() for line in (folder / "requirements.txt").read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        assert lines[0] == "../.."
        assert tomllib.loads(((folder / lines[0]).resolve() / "pyproject.toml").read_text())["project"]["name"] == (
            "langgraph-agentcore")
        declared = {normalised(dep)[0]: normalised(dep) for dep in
                    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
        for line in lines[1:]:
            assert normalised(line) == declared[normalised(line)[0]], line
    assert (ROOT / "examples" / ".gitignore").read_text().splitlines()[-1] == ".env"  # a developer's .env stays theirs


def run_build_step(step: str, cwd: Path) -> None:
    """A Dockerfile build step in `cwd`, `python` being this interpreter (the image's has the runtime's packages)."""
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    subprocess.run(["sh", "-c", step], cwd=cwd, check=True, timeout=60, env={"PATH": path})


def build_step(name: str) -> str:
    """The shell command after `&&` in the Dockerfile's RUN that starts with `name`'s command."""
    (run,) = [args for keyword, args in dockerfile() if keyword == "RUN" and "compileall" in args]
    (step,) = [part.strip() for part in run.split("&&") if part.strip().startswith(name)]
    return step


@pytest.mark.parametrize("example", EXAMPLES)
def test_dockerfile_serves_an_example_by_build_arg(example, tmp_path):
    """`--build-arg AGENT_PROJECT=examples/<example>`: the server runs in the example's folder (the image's last
    WORKDIR), where the runtime finds its langgraph.json; the env file it names — a developer's, never in a clean
    build context — is made empty by the build, so the runtime starts."""
    project = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, project, ignore=shutil.ignore_patterns(".env", "__pycache__"))
    run_build_step(build_step("python -c"), project)
    assert (project / ".env").read_text() == ""
    source = find_graph(Settings(), cwd=project)
    assert (source.spec, source.config_file, source.env) == ("./agent.py:graph", project / "langgraph.json", ".env")
    from langgraph.checkpoint.memory import InMemorySaver

    graph = load_graph(source, Settings(), InMemorySaver(), model=lambda: None)
    assert isinstance(graph.checkpointer, InMemorySaver)  # the runtime's checkpointer, the graph's own none


def test_dockerfile_build_step_leaves_other_projects_alone(tmp_path):
    step = build_step("python -c")
    run_build_step(step, tmp_path)  # no langgraph.json (the root's case): nothing made
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"a": "./a.py:g"}, "env": {"K": "v"}}))
    (tmp_path / ".env").write_text("KEPT=1\n")
    run_build_step(step, tmp_path)  # `env` as a mapping, and an existing .env: both left as they are
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "langgraph.json"]
    assert (tmp_path / ".env").read_text() == "KEPT=1\n"


# Every AGENT_GRAPH the deployment files and the examples' READMEs tell a user to set: each must load, from the
# project's root (where the image, `agentcore dev` and the deployed runtime start).
GRAPH_MENTIONS = re.compile(r"""(?:AGENT_GRAPH=|example_graph=|"AGENT_GRAPH", "value": ")([\w./-]+:[\w.]+)""")
DOCUMENTED_IN = [".bedrock_agentcore.yaml", "agentcore/.env.local.example", ".ci/agentcore-cli",
                 "examples/create_agent/README.md", "examples/stategraph/README.md"]


def documented_graphs() -> list[tuple[str, str]]:
    return sorted({(path, spec) for path in DOCUMENTED_IN
                   for spec in GRAPH_MENTIONS.findall((ROOT / path).read_text())})


def test_the_deployment_files_name_the_examples():
    mentioned = documented_graphs()
    assert {spec for _, spec in mentioned} == {
        "./examples/create_agent/agent.py:graph", "examples.create_agent.agent:graph",
        "./examples/stategraph/agent.py:graph", "examples.stategraph.agent:graph"}
    assert {path for path, _ in mentioned} == set(DOCUMENTED_IN)


@pytest.mark.parametrize("spec", sorted({spec for _, spec in documented_graphs()}))
def test_a_documented_agent_graph_loads(spec):
    from langgraph.checkpoint.memory import InMemorySaver

    source = find_graph(Settings(agent_graph=spec), cwd=ROOT)
    assert source == GraphSource(spec, ROOT)
    assert load_graph(source, Settings(), InMemorySaver(), model=lambda: None).checkpointer is not None


def test_agentcore_dev_watches_the_examples():
    """agentcore/.env.local.example: uvicorn's --reload watches bedrock/ and examples/ (click splits a path list on
    ":"), so an edited example reloads the dev server."""
    values = dict(line.split("=", 1) for line in (ROOT / "agentcore/.env.local.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    dirs = values["UVICORN_RELOAD_DIRS"].split(":")
    assert dirs == ["bedrock", "examples"] and all((ROOT / d).is_dir() for d in dirs)
