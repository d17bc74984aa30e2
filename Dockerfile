# The AgentCore Runtime image: ARM64 (AgentCore runs Graviton), built by `agentcore launch` (CodeBuild)
# or `docker buildx build --platform linux/arm64 .`. Follows the starter toolkit's Dockerfile template.
FROM ghcr.io/astral-sh/uv:python3.11-bookworm-slim
WORKDIR /app

# DOCKER_CONTAINER makes BedrockAgentCoreApp bind 0.0.0.0. LOG_FORMAT=json: one JSON object per log line.
# SERVE_UI=0: no chat page in the container (AgentCore
# routes only /invocations and /ping to it; anything else would be one more thing served to nobody). The session memory file lives under /tmp, the one
# place the non-root user can write (AgentCore Memory replaces it once `agentcore launch` injects a memory id).
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
    AGENT_MEMORY_PATH=/tmp/agent-memory/checkpoints.sqlite

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
# and the non-root user could not write the bytecode (~15 ms recompiled per session otherwise).
COPY . .
RUN python -m compileall -q bedrock

# Non-root user (uid 1000, as the toolkit's template), owning the memory folder.
RUN useradd -m -u 1000 bedrock_agentcore \
    && mkdir -p /tmp/agent-memory \
    && chown bedrock_agentcore /tmp/agent-memory
USER bedrock_agentcore

EXPOSE 8080

CMD ["opentelemetry-instrument", "python", "-m", "bedrock.agent_runtime"]
