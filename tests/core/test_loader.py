"""The graph a server runs: AGENT_GRAPH, a langgraph.json, or the built-in agent — and one clear error otherwise."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from bedrock.config import Settings
from bedrock.core.build import build_agent
from bedrock.core.loader import BUILT_IN, GraphLoadError, find_graph, load_graph, settings_with_graph_env

GRAPH = textwrap.dedent("""
    from langgraph.graph import START, MessagesState, StateGraph

    def reply(state: MessagesState):
        return {"messages": [("ai", "hello from " + __name__)]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    graph = builder.compile()
    uncompiled = builder

    def factory():
        return builder

    async def async_factory(config):
        assert config == {"configurable": {}}
        return builder.compile()

    def with_settings(settings, model):
        assert settings.memory_backend == "memory" and model is not None
        return builder

    def needs_more(database):
        return builder

    def broken():
        raise RuntimeError("no graph today")

    own = builder.compile(checkpointer=__import__("langgraph.checkpoint.memory").checkpoint.memory.InMemorySaver())
    not_a_graph = 42
""")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "agent.py").write_text(GRAPH)
    return tmp_path


def settings(**values: str) -> Settings:
    return Settings(memory_backend="memory", **values)  # type: ignore[arg-type]


def load(project: Path, spec: str) -> object:
    source = find_graph(settings(agent_graph=spec), cwd=project)
    return load_graph(source, settings(), InMemorySaver(), lambda: "model")


@pytest.mark.parametrize("attr", ["graph", "uncompiled", "factory", "async_factory", "with_settings"])
def test_each_kind_of_attribute_is_a_compiled_graph_with_the_runtime_s_checkpointer(project, attr):
    saver = InMemorySaver()
    source = find_graph(settings(agent_graph=f"./agent.py:{attr}"), cwd=project)
    graph = load_graph(source, settings(), saver, lambda: "model")
    assert graph.checkpointer is saver
    assert list(graph.nodes) == ["__start__", "reply"]


def test_an_absolute_path_and_a_module_on_the_project_path_load_too(project):
    assert load(project, f"{project / 'agent.py'}:graph") is not None
    assert load(project, "agent:graph") is not None


@pytest.mark.parametrize("spec,message", [
    ("./missing.py:graph", "no such file"),
    ("./agent.py:nothing", "has no attribute 'nothing'"),
    ("./agent.py", "expected"),
    ("./agent.py:not_a_graph", "is a int, not a LangGraph graph"),
    ("./agent.py:broken", "the factory failed: RuntimeError: no graph today"),
    ("./agent.py:needs_more", "parameter 'database'"),
    ("./agent.py:own", "compiled with a checkpointer of its own (InMemorySaver)"),
    ("no_such_module_here:graph", "importing no_such_module_here failed: ModuleNotFoundError"),
])
def test_a_graph_that_cannot_load_is_one_error_naming_it(project, spec, message):
    with pytest.raises(GraphLoadError) as failure:
        load(project, spec)
    assert spec.split(":")[0] in str(failure.value) and message in str(failure.value)


def test_a_module_that_fails_to_import_names_the_error(project):
    (project / "bad.py").write_text("def broken(:\n")
    with pytest.raises(GraphLoadError, match=r"bad.py failed: SyntaxError"):
        load(project, "./bad.py:graph")


def test_langgraph_json_in_the_working_directory_and_its_env_file(project, monkeypatch):
    monkeypatch.delenv("EXAMPLE_GREETING", raising=False)
    (project / ".env").write_text("EXAMPLE_GREETING=hi\n")
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"agent": "./agent.py:graph"}, "env": ".env"}))
    source = find_graph(settings(), cwd=project)
    assert source.spec == "./agent.py:graph" and source.config_file == project / "langgraph.json"
    agent = build_agent(settings(), source=source)
    try:
        assert os.environ["EXAMPLE_GREETING"] == "hi" and not agent.built_in
    finally:
        agent.close()
        os.environ.pop("EXAMPLE_GREETING", None)


def test_the_env_file_never_overrides_a_variable_already_set(project, monkeypatch):
    monkeypatch.setenv("EXAMPLE_GREETING", "from the deployment")
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"a": "./agent.py:graph"},
                                                       "env": {"EXAMPLE_GREETING": "from the file"}}))
    agent = build_agent(settings(), source=find_graph(settings(), cwd=project))
    agent.close()
    assert os.environ["EXAMPLE_GREETING"] == "from the deployment"


def test_the_runtime_s_own_settings_come_from_langgraph_json_s_env_beneath_the_environment(project, monkeypatch):
    """As `langgraph dev` loads a langgraph.json's env into its process: the runtime's settings read it too (a
    MEMORY_BACKEND in a project's .env applies), and the environment still wins."""
    for name in ("AGENT_GRAPH", "LANGGRAPH_CONFIG", "AGENT_NAME", "MAX_EVENT_BYTES", "TOKEN_BUFFER_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMORY_BACKEND", "memory")
    (project / ".env").write_text("MAX_EVENT_BYTES=4096\nMEMORY_BACKEND=sqlite\nTOKEN_BUFFER_SIZE=7\n")
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"agent": "./agent.py:graph"}, "env": ".env"}))
    monkeypatch.chdir(project)
    try:
        read = settings_with_graph_env()
        assert (read.max_event_bytes, read.token_buffer_size, read.memory_backend) == (4096, 7, "memory")
    finally:
        for name in ("MAX_EVENT_BYTES", "TOKEN_BUFFER_SIZE"):
            os.environ.pop(name, None)


@pytest.mark.parametrize("config", ["{not json", json.dumps({"graphs": {}, "env": {"MAX_EVENT_BYTES": "4096"}}),
                                    json.dumps({"graphs": {"a": "./agent.py:graph"}, "env": "missing.env"})])
def test_a_langgraph_json_that_cannot_be_read_leaves_the_settings_to_the_build_to_refuse(project, monkeypatch, config):
    for name in ("AGENT_GRAPH", "LANGGRAPH_CONFIG", "AGENT_NAME", "MAX_EVENT_BYTES"):
        monkeypatch.delenv(name, raising=False)
    (project / "langgraph.json").write_text(config)
    monkeypatch.chdir(project)
    assert settings_with_graph_env().max_event_bytes == Settings().max_event_bytes  # no exception at import
    with pytest.raises(GraphLoadError):
        build_agent(settings()).close()
    assert "MAX_EVENT_BYTES" not in os.environ


def test_several_graphs_need_agent_name(project):
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"a": "./agent.py:graph",
                                                                   "b": "./agent.py:factory"}}))
    with pytest.raises(GraphLoadError, match="set AGENT_NAME"):
        find_graph(settings(), cwd=project)
    assert find_graph(settings(agent_name="b"), cwd=project).spec == "./agent.py:factory"
    with pytest.raises(GraphLoadError, match="AGENT_NAME=c is not a graph"):
        find_graph(settings(agent_name="c"), cwd=project)


@pytest.mark.parametrize("content,message", [
    ("{not json", "cannot read"), ('{"graphs": {}}', "has no `graphs`"), ('{"graphs": {"a": 3}}', "must be"),
])
def test_a_broken_langgraph_json_is_one_error(project, content, message):
    (project / "langgraph.json").write_text(content)
    with pytest.raises(GraphLoadError, match=message):
        find_graph(settings(), cwd=project)


def test_langgraph_config_names_a_file_elsewhere_and_a_missing_one_is_an_error(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("run-from-here")
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"a": "./agent.py:graph"}}))
    source = find_graph(settings(langgraph_config=str(project / "langgraph.json")), cwd=elsewhere)
    assert source.base == project  # its graphs' paths are relative to the file
    with pytest.raises(GraphLoadError, match="cannot read"):
        find_graph(settings(langgraph_config="nowhere.json"), cwd=elsewhere)


def test_nothing_configured_is_the_built_in_agent_loaded_the_same_way(tmp_path):
    source = find_graph(settings(), cwd=tmp_path)
    assert source.spec == BUILT_IN and source.built_in
    agent = build_agent(settings(), source=source)
    try:
        assert set(agent.graph.nodes) == {"__start__", "chatbot", "tools"} and agent.built_in
    finally:
        agent.close()


@pytest.mark.parametrize("variable", ["APPROVAL_REQUIRED_TOOLS", "HISTORY_MAX_MESSAGES"])
def test_the_built_in_agent_s_settings_stop_a_user_graph_at_startup(project, variable):
    value = "calculator" if variable == "APPROVAL_REQUIRED_TOOLS" else "10"
    configured = Settings.from_env({"MEMORY_BACKEND": "memory", "AGENT_GRAPH": "./agent.py:graph", variable: value})
    with pytest.raises(GraphLoadError, match=f"{variable}: the built-in agent's settings"):
        build_agent(configured, source=find_graph(configured, cwd=project))


def test_a_graph_of_its_own_in_offline_mode_reaches_the_local_endpoint(project, monkeypatch):
    for name in ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    agent = build_agent(settings(), source=find_graph(settings(agent_graph="./agent.py:graph"), cwd=project))
    try:
        assert os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"].startswith("http://127.0.0.1:")
        assert os.environ["AWS_ACCESS_KEY_ID"] == "offline"
    finally:
        agent.close()


def test_a_server_whose_graph_cannot_load_stops_saying_why_in_one_line(project):
    """`python -m bedrock.agent_runtime` with a graph that is not there: the server stops (non-zero) and its log says
    which file, in one line, without our own traceback."""
    import subprocess
    import sys

    env = {**os.environ, "AGENT_GRAPH": "./missing.py:graph", "PORT": "0", "MEMORY_BACKEND": "memory"}
    done = subprocess.run([sys.executable, "-m", "bedrock.agent_runtime"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert errors == [f"{errors[0].split(' ERROR ')[0]} ERROR bedrock.server.runtime: could not load the agent's "
                      f"graph: ./missing.py:graph: no such file {project / 'missing.py'}"]
    assert "Traceback" not in done.stderr
