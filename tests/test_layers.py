"""The layers, read from the code itself (every `import` of every module, by AST): each depends only downwards, no
module imports itself back through others, and no backend is chosen by a class's name.

    server → core → store → (config, errors)          wire → (config, errors)        client → wire
    core, server → wire                               offline: reached from core/build.py alone
    agents → core, wire (imported by no module: the loader finds them by name, as it finds a user's graph)
    mcp → (config, errors): MCP servers' tools, reached from core/build.py and the built-in agent
    a2a → server, core, wire: A2A over the app's Runtime, mounted by server/app.py alone (a2a-sdk loaded lazily)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bedrock"
# What each layer may import from the package (besides itself and the modules below every layer).
BELOW_ALL = {"bedrock.config", "bedrock.errors"}
ALLOWED = {
    "bedrock.wire": set(),
    "bedrock.store": set(),
    "bedrock.core": {"bedrock.wire", "bedrock.store", "bedrock.offline", "bedrock.mcp"},
    "bedrock.mcp": set(),
    "bedrock.offline": {"bedrock.wire"},
    "bedrock.server": {"bedrock.core", "bedrock.wire", "bedrock.store", "bedrock.a2a"},
    "bedrock.client": {"bedrock.wire"},
    "bedrock.agents": {"bedrock.core", "bedrock.wire", "bedrock.mcp"},  # graph modules, as a user's: imported by name by the loader
    "bedrock.a2a": {"bedrock.server", "bedrock.core", "bedrock.wire"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The package's modules `path` imports (at any depth of the file: a lazy import is an import too)."""
    found: set[str] = set()
    here = module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = here.split(".")[: -node.level if path.name != "__init__.py" else len(here.split("."))]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "bedrock" or name.startswith("bedrock.")}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: {target for target in imports(path) if target in MODULES} for name, path in MODULES.items()}


def layer(name: str) -> str | None:
    return next((prefix for prefix in ALLOWED if name == prefix or name.startswith(prefix + ".")), None)


@pytest.mark.parametrize("prefix", list(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(prefix):
    wrong = []
    for name, targets in GRAPH.items():
        if layer(name) != prefix:
            continue
        for target in targets:
            other = layer(target)
            if other is not None and other != prefix and other not in ALLOWED[prefix]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_offline_is_reached_from_the_build_alone():
    users = {name for name, targets in GRAPH.items() if layer(name) != "bedrock.offline"
             and any(layer(target) == "bedrock.offline" for target in targets)}
    assert users <= {"bedrock.core.build"}, users


def test_mcp_is_reached_from_the_build_and_the_built_in_agent_alone():
    """MCP's imports (the adapters, the mcp SDK, Authlib) cost a start nothing unless MCP_SERVERS is set."""
    users = {name for name, targets in GRAPH.items() if layer(name) != "bedrock.mcp"
             and any(layer(target) == "bedrock.mcp" for target in targets)}
    assert users <= {"bedrock.core.build", "bedrock.agents.calculator"}, users


def test_a2a_is_mounted_by_the_app_alone():
    """The app mounts A2A's routes (bedrock/a2a/app.py, which imports nothing of a2a-sdk); every other module of the
    layer is imported from there lazily, on the first A2A request."""
    users = {(name, target) for name, targets in GRAPH.items() if layer(name) != "bedrock.a2a"
             for target in targets if layer(target) == "bedrock.a2a"}
    assert users <= {("bedrock.server.app", "bedrock.a2a.app")}, users


def test_the_built_in_agent_is_imported_by_no_module():
    """The built-in agent is loaded as any user's graph is, by name (core/loader.py: BUILT_IN): no special path."""
    users = {name for name, targets in GRAPH.items() if layer(name) != "bedrock.agents"
             and any(layer(target) == "bedrock.agents" for target in targets)}
    assert users == set(), users


def test_no_import_cycle():
    """No module reaches itself through the modules it imports, eagerly or lazily (a package's `__init__` that
    only re-exports its children is walked like any module)."""
    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in GRAPH.get(node, ()):
                if target == start:
                    return path + [start]
                if target not in seen:
                    seen.add(target)
                    stack.append((target, path + [target]))
        return None

    cycles = [cycle for name in GRAPH if (cycle := cycle_from(name)) is not None
              and not _package_reexport(cycle)]
    assert not cycles, cycles[0]


def _package_reexport(cycle: list[str]) -> bool:
    """`pkg/__init__.py` importing `pkg.child` while `pkg.child` imports a sibling through `pkg`: Python resolves
    the child by its full name, so this is not a cycle of modules, only of the names a package re-exports."""
    return any(cycle[i + 1].startswith(cycle[i] + ".") for i in range(len(cycle) - 1))


def test_no_backend_is_chosen_by_a_class_name():
    """`type(x).__name__ == "AgentCoreMemorySaver"` chose owners by name: a subclass or a rename silently fell back
    to in-process owners, forgotten at restart. Backends are chosen by the settings, in `bedrock/store/backends.py`."""
    by_name = re.compile(r"(__name__|__qualname__|__class__\.__name__)\s*(==|!=|in)\s*|\.__name__\)\s*(==|in)")
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
             for path in PACKAGE.rglob("*.py") for n, line in enumerate(path.read_text().splitlines(), 1)
             if by_name.search(line) and "__main__" not in line]
    allowed = [line for line in found if "CancelledError" in line]  # telemetry: an exception's kind, not a backend
    assert found == allowed, found
