# The AgentCore Runtime image: ARM64 (AgentCore runs Graviton), built by `agentcore launch` (CodeBuild)
# or `docker buildx build --platform linux/arm64 .`. Follows the starter toolkit's Dockerfile template.
# Python 3.11, as agentcore/agentcore.json's PYTHON_3_11: bench/interpreters.py measures the runtime on 3.12 and 3.13
# beside it (cold start, CPU per turn) and neither is faster by more than the run's noise (bench/RESULTS.md); the
# suite runs on 3.11 and 3.13 alike (CI).
FROM ghcr.io/astral-sh/uv:python3.11-bookworm-slim
WORKDIR /app

# Which agent the image serves, by configuration alone (README, "Bring your own agent"; examples/*/README.md):
#   AGENT_PROJECT  a folder of the build context: the server runs in it, so the langgraph.json there names the graph,
#                  e.g. `--build-arg AGENT_PROJECT=examples/create_agent`; "." (default): the repository's root.
#   AGENT_GRAPH    the graph itself (`./agent.py:graph` from AGENT_PROJECT, or `package.module:graph`) instead of a
#                  langgraph.json; empty (default): that file, else the built-in agent. A runtime's own AGENT_GRAPH
#                  variable (`agentcore launch --env AGENT_GRAPH=...`, agentcore.json's envVars) overrides it.
ARG AGENT_PROJECT=.
ARG AGENT_GRAPH=

# DOCKER_CONTAINER makes BedrockAgentCoreApp bind 0.0.0.0. LOG_FORMAT=json: one JSON object per log line.
# SERVE_UI=0: no chat page in the container (AgentCore
# routes only /invocations and /ping to it; anything else would be one more thing served to nobody). The session memory file lives under /tmp, the one
# place the non-root user can write (AgentCore Memory replaces it once `agentcore launch` injects a memory id).
# PYTHONPATH: the runtime's package, from whichever folder the server runs in (AGENT_PROJECT).
ENV UV_SYSTEM_PYTHON=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_PROGRESS=1 \
    PYTHONUNBUFFERED=1 \
    DOCKER_CONTAINER=1 \
    AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 \
    MODEL_PROVIDER=bedrock \
    SERVE_UI=0 \
    LOG_FORMAT=json \
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=aws_langchain \
    AGENT_MEMORY_PATH=/tmp/agent-memory/checkpoints.sqlite \
    AGENT_GRAPH=${AGENT_GRAPH} \
    PYTHONPATH=/app

# Dependencies first, so code changes do not reinstall them: the runtime's lock file (`make lock` writes it from
# requirements.txt), every file checked against its sha256. Then requirements.txt, with no index: nothing is fetched,
# so a lock that no longer satisfies the ranges fails the build instead of installing anything unpinned.
COPY requirements.txt requirements.txt
COPY requirements.lock requirements.lock
RUN uv pip install --require-hashes -r requirements.lock \
    && uv pip install --no-index -r requirements.txt

# Observability: AgentCore collects traces through the ADOT distro's `opentelemetry-instrument`. Each turn is
# traced by our own spans (bedrock/core/telemetry.py), so the distro's LangChain instrumentation is turned off
# above (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS): it would trace the turn a second time, message text included.
# Not in the lock: the distro pins the OpenTelemetry releases it was made for, and this step moves the lock's to
# them (seen with distro 0.21.0: opentelemetry-api 1.45.2 -> 1.44.0, pyyaml 6.0.4 -> 6.0.3).
RUN uv pip install "aws-opentelemetry-distro>=0.18.0,<1.0.0"

# Copy the project (respecting .dockerignore), compiled now: every AgentCore session is a cold start,
# and the non-root user could not write the bytecode (~15 ms recompiled per session otherwise). AGENT_PROJECT's
# code too. Its langgraph.json may name an `env` file, which is for development (`cp .env.example .env`): the
# image's environment is the deployment's (ENV here, the runtime's variables). The runtime refuses to start when
# that file is missing, so one the build context lacks is created empty.
COPY . .
RUN python -m compileall -q bedrock "$AGENT_PROJECT" \
    && cd "$AGENT_PROJECT" \
    && python -c 'import json, pathlib; c = pathlib.Path("langgraph.json"); env = json.loads(c.read_text()).get("env") if c.is_file() else None; isinstance(env, str) and pathlib.Path(env).touch()'

# Non-root user (uid 1000, as the toolkit's template), owning the memory folder.
RUN useradd -m -u 1000 bedrock_agentcore \
    && mkdir -p /tmp/agent-memory \
    && chown bedrock_agentcore /tmp/agent-memory
USER bedrock_agentcore

# The server runs in the agent's project folder: its langgraph.json, and AGENT_GRAPH's relative paths, start there.
WORKDIR /app/${AGENT_PROJECT}
EXPOSE 8080

CMD ["opentelemetry-instrument", "python", "-m", "bedrock.agent_runtime"]
