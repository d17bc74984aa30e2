"""The guide's browser `fetch` client and React logic, run under Node against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.guide import snippet

NODE = shutil.which("node") or "node"  # .ci/run installs Node.js when the machine lacks it


def run_node(source: str, tmp_path: Path, base_url: str) -> list:
    script = tmp_path / "client.mjs"
    script.write_text(source)
    result = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60, env={**os.environ, "BASE_URL": base_url})
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def browser_program(prompt: str) -> str:
    code = snippet("JavaScript (Browser)")
    code = code.replace("fetch('/invoke'", "fetch(process.env.BASE_URL + '/invoke'")
    # The guide's one slip: `const eventType` is scoped to its `if`; hoist it so the log can see it.
    code = code.replace("const eventType = ", "eventType = ")
    code = code.replace('prompt: "Calculate 15 * 8"', f"prompt: {json.dumps(prompt)}")
    return (
        "console.log = (type, data) => process.stdout.write(JSON.stringify([type, data]) + '\\n');\n"
        "let eventType;\n" + code
    )


@pytest.mark.parametrize("prompt, answer", [("What is 25 * 4?", "100"), ("Calculate 15 * 8", "120")])
def test_browser_fetch_snippet(server, tmp_path, prompt, answer):
    events = run_node(browser_program(prompt), tmp_path, server.url)
    types = [t for t, _ in events]
    assert types[0] == "agent_start" and types[-1] == "agent_end"
    assert "agent_step" in types
    end = events[-1][1]
    assert answer in end["output"] and end["metrics"]["tool_calls"] >= 1 and end["metrics"]["tokens"] > 0


def react_program(prompt: str) -> str:
    code = snippet("React Component")
    start = code.index("  const sendMessage")
    end = code.index("\n  };\n", start) + len("\n  };\n")
    send_message = code[start:end].replace("fetch('/invoke'", "fetch(process.env.BASE_URL + '/invoke'")
    return f"""
const updates = [];
const names = ['messages', 'currentMessage'];
let hook = 0;
function useState(initial) {{
  let value = initial;
  const name = names[hook++];
  return [value, (next) => {{ value = typeof next === 'function' ? next(value) : next; updates.push([name, value]); }}];
}}
function StreamingChat() {{
  const [messages, setMessages] = useState([]);
  const [currentMessage, setCurrentMessage] = useState('');
{send_message}
  return sendMessage;
}}
await StreamingChat()({json.dumps(prompt)});
for (const update of updates) process.stdout.write(JSON.stringify(update) + '\\n');
"""


def test_react_component_logic(server, tmp_path):
    updates = run_node(react_program("What is 25 * 4?"), tmp_path, server.url)
    assert ["currentMessage", "I'll calculate that for you."] in updates
    assert updates[-2:] == [["messages", ["The result of 25 * 4 is 100."]], ["currentMessage", ""]]
