"""The agent's graph, wherever it lives: AGENT_GRAPH, a `langgraph.json`, or the built-in agent — loaded one way.

    AGENT_GRAPH=./agent.py:graph            a file (relative to the working directory, or absolute) and an attribute
    AGENT_GRAPH=my_pkg.agent:graph          a module on sys.path (langgraph.json's syntax for either)
    langgraph.json                          in the working directory, or LANGGRAPH_CONFIG=path: its `graphs` (one,
                                            or AGENT_NAME picks one), its `env` (a file, or a mapping) beneath the
                                            process environment, for the graph and the runtime's settings alike,
                                            its `store` for long-term memory (core/store_section.py)
    (none of these)                         the built-in agent, bedrock/agents/calculator.py:graph

The attribute is a compiled graph, an uncompiled `StateGraph`, or a factory (sync or async) returning either. A
factory is called once, at startup, with the arguments it names among `config` (a RunnableConfig, as LangGraph's
server passes), `settings` (this runtime's Settings), `model` (the configured ChatBedrockConverse: BEDROCK_MODEL_ID,
retries, timeouts, the offline endpoint offline) and `mcp_tools` (the tools of the MCP servers MCP_SERVERS names,
a list of LangChain tools; listed only for a factory that asks). The graph gets the runtime's checkpointer: sessions
are kept where MEMORY_BACKEND says; a graph compiled with a checkpointer of its own is refused (its sessions would be
kept somewhere the runtime neither rolls back, owns, nor finds after a restart). Every failure is one GraphLoadError
naming the source and what went wrong.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph, StateGraph

from bedrock.config import ConfigError, Settings
from bedrock.core.store_section import StoreSection, store_section

BUILT_IN = "bedrock.agents.calculator:graph"
CONFIG_FILE = "langgraph.json"


class GraphLoadError(ConfigError):
    """The configured graph could not be found, imported, built or compiled (raised at startup)."""


@dataclass(frozen=True)
class GraphSource:
    """Where the graph is: `path:attr` or `module:attr`, the folder relative paths start from, the langgraph.json it
    came from (if any) and that file's `env` and `store`."""

    spec: str
    base: Path
    config_file: Path | None = None
    env: str | Mapping[str, str] | None = None
    store: StoreSection | None = None  # its `store` section (long-term memory's index and expiry)

    @property
    def built_in(self) -> bool:
        return self.spec == BUILT_IN

    def __str__(self) -> str:
        return f"{self.spec} (from {self.config_file})" if self.config_file else self.spec


def find_graph(settings: Settings, cwd: Path | None = None) -> GraphSource:
    """The graph the settings name: AGENT_GRAPH, else a langgraph.json, else the built-in agent."""
    cwd = cwd or Path.cwd()
    if settings.agent_graph:
        return GraphSource(settings.agent_graph, cwd)
    config_file = Path(settings.langgraph_config) if settings.langgraph_config else cwd / CONFIG_FILE
    if not config_file.is_absolute():
        config_file = cwd / config_file
    if settings.langgraph_config or config_file.is_file():
        return _from_config_file(config_file, settings.agent_name)
    return GraphSource(BUILT_IN, cwd)


def _from_config_file(path: Path, name: str) -> GraphSource:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise GraphLoadError(f"cannot read {path}: {error}") from None
    graphs = config.get("graphs") if isinstance(config, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise GraphLoadError(f"{path} has no `graphs` (e.g. {{\"graphs\": {{\"agent\": \"./agent.py:graph\"}}}})")
    if name:
        if name not in graphs:
            raise GraphLoadError(f"AGENT_NAME={name} is not a graph of {path} (its graphs: {', '.join(graphs)})")
    elif len(graphs) > 1:
        raise GraphLoadError(f"{path} has {len(graphs)} graphs ({', '.join(graphs)}): set AGENT_NAME to pick one")
    else:
        name = next(iter(graphs))
    spec = graphs[name]
    if isinstance(spec, dict):  # {"path": "./agent.py:graph", "description": …}, as langgraph.json allows
        spec = spec.get("path")
    if not isinstance(spec, str):
        raise GraphLoadError(f"{path}: graph {name!r} must be \"./file.py:attr\" or \"module:attr\"")
    env = config.get("env")
    if env is not None and not isinstance(env, (str, dict)):
        raise GraphLoadError(f"{path}: `env` must be a file path or a mapping of variables")
    try:
        store = store_section(config["store"]) if "store" in config else None
    except ValueError as invalid:
        raise GraphLoadError(f"{path}: {invalid}") from None
    return GraphSource(spec, path.parent, path, env, store)


def apply_env(source: GraphSource) -> None:
    """langgraph.json's `env`: its variables join the environment, never overriding one already set (the
    deployment's own values win over a development file's, as `langgraph dev` does)."""
    env = source.env
    if env is None:
        return
    if isinstance(env, str):
        from dotenv import dotenv_values

        path = source.base / env
        if not path.is_file():
            raise GraphLoadError(f"{source.config_file}: its env file {path} does not exist")
        values: Mapping[str, str | None] = dotenv_values(path)
    else:
        values = env
    for key, value in values.items():
        if value is not None:
            os.environ.setdefault(key, str(value))


def settings_with_graph_env(cwd: Path | None = None) -> Settings:
    """The runtime's settings from the process environment and, beneath it, the `env` of the langgraph.json that
    names the graph, as `langgraph dev` loads it into its process: a MEMORY_BACKEND or BEDROCK_MODEL_ID there applies
    unless the environment sets it. A langgraph.json that cannot be read leaves the process's settings alone: the
    agent's build then names what is wrong, with the server up (as any graph that fails to load)."""
    settings = Settings.from_env()
    try:
        source = find_graph(settings, cwd)
        if source.env is None:
            return settings
        apply_env(source)
    except GraphLoadError:
        return settings
    return Settings.from_env()


def load_graph(source: GraphSource, settings: Settings, checkpointer: BaseCheckpointSaver | None,
               model: Callable[[], Any], mcp_tools: Callable[[], list[Any]] = list,
               own_store: bool = True) -> CompiledStateGraph:
    """The compiled graph `source` names, with `checkpointer`; `model()` makes the configured chat model and
    `mcp_tools()` lists the MCP servers' tools (each called only for a factory that asks for it). `own_store`: a
    graph may keep a store it was compiled with (false when the runtime gives each turn its long-term memory)."""
    target = _attribute(source)
    if callable(target) and not isinstance(target, (StateGraph, CompiledStateGraph)):
        target = _call_factory(source, target, settings, {"model": model, "mcp_tools": mcp_tools})
    if isinstance(target, StateGraph):
        try:
            return target.compile(checkpointer=checkpointer)
        except Exception as error:
            raise GraphLoadError(f"{source}: the StateGraph does not compile: {error}") from error
    if not isinstance(target, CompiledStateGraph):
        raise GraphLoadError(f"{source} is a {type(target).__name__}, not a LangGraph graph (a compiled graph, a "
                             "StateGraph, or a function returning one)")
    if not own_store and target.store is not None:
        raise GraphLoadError(
            f"{source} was compiled with a store of its own ({type(target.store).__name__}): compile it without one; "
            "this runtime gives every turn its actor's long-term memory as the store (`get_store()`), kept as "
            "MEMORY_BACKEND says (or set LONG_TERM_MEMORY=off to keep yours)")
    own = target.checkpointer
    if own is not None and own is not False:
        raise GraphLoadError(
            f"{source} was compiled with a checkpointer of its own ({type(own).__name__}): compile it without one "
            "(`builder.compile()`); this runtime gives every graph its own, as MEMORY_BACKEND says")
    return target.copy(update={"checkpointer": checkpointer})


def _attribute(source: GraphSource) -> Any:
    location, sep, attr = source.spec.rpartition(":")
    if not sep or not location or not attr:
        raise GraphLoadError(f"{source}: expected \"./path/to/file.py:attr\" or \"package.module:attr\"")
    module = _import(source, location)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise GraphLoadError(f"{source}: {location} has no attribute {attr!r}") from None
    return target


def _import(source: GraphSource, location: str) -> Any:
    is_file = location.endswith(".py") or "/" in location or os.sep in location
    try:
        if not is_file:
            if str(source.base) not in sys.path:  # as `python -m` would: the project's own modules import
                sys.path.insert(0, str(source.base))
            return importlib.import_module(location)
        path = Path(location)
        path = (path if path.is_absolute() else source.base / path).resolve()
        if not path.is_file():
            raise GraphLoadError(f"{source}: no such file {path}")
        if str(path.parent) not in sys.path:  # its sibling modules import, as under `langgraph dev`
            sys.path.insert(0, str(path.parent))
        name = f"agent_graph_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise GraphLoadError(f"{source}: {path} is not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pydantic look their module up while it loads
        spec.loader.exec_module(module)
        return module
    except GraphLoadError:
        raise
    except Exception as error:  # an ImportError, a SyntaxError, its own code failing: named, with the cause
        raise GraphLoadError(f"{source}: importing {location} failed: {type(error).__name__}: {error}") from error


def _call_factory(source: GraphSource, factory: Callable[..., Any], settings: Settings,
                  made: dict[str, Callable[[], Any]]) -> Any:
    offered: dict[str, Callable[[], Any]] = {"config": lambda: {"configurable": {}}, "settings": lambda: settings,
                                             **made}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]  # a builtin without a signature: called with nothing
    arguments = {}
    for name, parameter in parameters.items():
        if name in offered:
            arguments[name] = offered[name]()
        elif parameter.default is inspect.Parameter.empty and parameter.kind not in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise GraphLoadError(f"{source}: the factory's parameter {name!r} is not one this runtime passes "
                                 f"({', '.join(offered)})")
    try:
        built = factory(**arguments)
        if inspect.isawaitable(built):  # an async factory: run on a loop of its own (the build is on a thread)
            built = asyncio.run(_awaited(built))
    except ConfigError:  # a GraphLoadError, or MCP_SERVERS' own (named as it is)
        raise
    except Exception as error:
        raise GraphLoadError(f"{source}: the factory failed: {type(error).__name__}: {error}") from error
    return built


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
