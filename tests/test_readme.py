"""The README works as written, from a fresh clone once `make` has made .venv.

- Every ```python block compiles and runs (from the repository's root, offline); one that talks to a server runs
  against a live offline server, its URL substituted as the guide's snippet tests substitute theirs.
- Every command of every ```bash block is run (curl, the client, the starter toolkit's local invoke: against a live
  server, the port substituted) or checked (make targets exist, files and modules exist); the commands that cannot
  run here — AWS, the npm CLI, installing from the network — are listed in NOT_RUN with the reason.
- Inline commands and paths: `make` targets exist, no bare `python …` (the README runs .venv's), repository paths
  exist; every link resolves inside the repository (this README's, the guide copy's and the benchmark results').
- The configuration table has a row, with its default, for every variable bedrock/config.py reads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bedrock.config import Settings
from testkit.env import OFFLINE_ENV
from testkit.live_server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The interpreter running these tests is .venv's under `make test`; its folder stands for the README's `.venv/bin/`.
VENV_BIN = Path(sys.executable).parent
LOCAL = ("localhost:8080", "127.0.0.1:8080")  # where the README's commands expect `make run`

# Commands that cannot run in a test, each with the reason (the command as the README writes it, comment removed).
NOT_RUN = {
    "agentcore dev --logs --port 8090": "the AgentCore CLI (npm @aws/agentcore), which make does not install; "
                                        ".ci/agentcore-cli runs it",
    'agentcore dev --port 8090 --stream "What is 25 * 4?"': "the AgentCore CLI (npm); .ci/agentcore-cli checks "
                                                            "this answer",
    "agentcore dev": "the AgentCore CLI's browser chat (npm, interactive)",
    "agentcore deploy": "deploys to AWS (an account, CDK)",
    ".venv/bin/agentcore launch": "builds and deploys a container to AWS",
    """.venv/bin/agentcore invoke '{"prompt": "Hello"}'""": "calls the deployed runtime on AWS",
    '.venv/bin/python -m bedrock.client --arn ARN "What is 25 * 4?"': "calls a deployed runtime on AWS (ARN)",
    ".venv/bin/python -m pip install opentelemetry-distro": "installs from PyPI (network), and .venv would then "
                                                            "differ from the lock",
    "OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console .venv/bin/opentelemetry-instrument .venv/bin/python "
    "-m bedrock.agent_runtime": "a server that runs until stopped, and needs the distro the line before installs",
}

# What a python block prints, found by a phrase of the block.
PYTHON_PRINTS = {
    "AgentClient(": ["agent_end", "The result of 6 * 7 is 42."],
    "invoke_agent(": ["The result of 25 * 4 is 100."],
}

# Inline paths that exist only once something has run (not in a fresh clone).
CREATED_PATHS = {"agentcore/.env.local", "agentcore/.cli/"}


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence

    @property
    def id(self) -> str:
        return f"{self.lang}-line-{self.line}"


def blocks(path: Path = README) -> list[Block]:
    """The fenced code blocks of a markdown file (an indented fence's lines dedented)."""
    found: list[Block] = []
    current: list[str] | None = None
    indent, lang, start = "", "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if current is None:
            opened = re.match(r"^(\s*)```(\S*)\s*$", line)
            if opened:
                current, indent, lang, start = [], opened.group(1), opened.group(2), number
        elif line.strip() == "```":
            found.append(Block(lang, "".join(current), start))
            current = None
        else:
            current.append((line[len(indent):] if line.startswith(indent) else line) + "\n")
    assert current is None, f"{path}: the fence opened at line {start} is never closed"
    return found


def prose(path: Path = README) -> str:
    """The text outside fenced blocks."""
    return re.sub(r"^\s*```.*?^\s*```[ \t]*$", "", path.read_text(), flags=re.S | re.M)


def commands(code: str) -> list[list[str]]:
    """A bash block's commands, as words: continuation lines and multi-line quotes joined, comments dropped."""
    found: list[list[str]] = []
    pending = ""
    for line in code.splitlines():
        if pending.endswith("\\"):  # a continuation line: the shell drops the backslash and the newline
            pending = pending[:-1] + line
        else:
            pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        if words:
            found.append(words)
        pending = ""
    assert not pending, f"unterminated command: {pending!r}"
    return found


def not_run(words: list[str]) -> str | None:
    """Why the command is not run here, if NOT_RUN lists it."""
    return next((why for command, why in NOT_RUN.items() if shlex.split(command) == words), None)


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", prose(path), flags=re.M)}


def offline_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **OFFLINE_ENV, "AGENT_MEMORY_PATH": str(tmp_path / "memory.sqlite"),
            "AGENTCORE_SUPPRESS_RECOMMENDATION": "1"}


def program(word: str) -> str:
    """`.venv/bin/X` as the interpreter's own folder's X (the venv `make` made)."""
    return str(VENV_BIN / word.removeprefix(".venv/bin/")) if word.startswith(".venv/bin/") else word


def localised(text: str, live: LiveServer) -> str:
    """The README's local server's address as `live`'s."""
    for local in LOCAL:
        text = text.replace(local, f"127.0.0.1:{live.port}")
    return text


def localised_words(words: list[str], live: LiveServer) -> list[str]:
    out = [localised(w, live) for w in words]
    return [str(live.port) if w == "8080" and i and out[i - 1] == "--port" else w for i, w in enumerate(out)]


# --- live servers -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, LiveServer]]:
    """`make run`'s server (offline, unpaced), and the one the Approvals section asks for."""
    started = {"plain": LiveServer(), "approvals": LiveServer({"APPROVAL_REQUIRED_TOOLS": "calculator"})}
    yield started
    for live in started.values():
        live.stop()


# --- the document's shape -----------------------------------------------------------------------------------------

def test_it_leads_with_what_a_user_does():
    headings = re.findall(r"^## (.+)$", prose(), flags=re.M)
    wanted = ["Run it", "Call it", "Bring your own agent", "Deploy", "Configuration", "Reference"]
    assert [h for h in headings if h in wanted] == wanted, headings
    assert headings[:3] == wanted[:3], "nothing between running it, calling it and bringing your own agent"


def test_every_fence_says_its_language():
    for block in blocks():
        assert block.lang in ("python", "bash", "text"), f"line {block.line}: ```{block.lang} (python, bash or text)"


# --- python blocks --------------------------------------------------------------------------------------------------

PYTHON = [b for b in blocks() if b.lang == "python"]


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_compiles(block):
    compile(block.code, f"README.md:{block.line}", "exec")


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_runs(block, servers, tmp_path):
    code = localised(block.code, servers["plain"])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=offline_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for phrase, printed in PYTHON_PRINTS.items():
        if phrase in block.code:
            for text in printed:
                assert text in done.stdout, (text, done.stdout)


# --- bash blocks ----------------------------------------------------------------------------------------------------

BASH = [b for b in blocks() if b.lang in ("bash", "sh")]


def curl(argv: list[str], live: LiveServer) -> tuple[int, str]:
    """Run a README curl against `live`; its HTTP status and body."""
    done = subprocess.run([program(w) for w in argv] + ["-sS", "-w", "\n%{http_code}"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, (argv, done.stderr)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def check_curl(words: list[str], live: LiveServer, seen: dict[str, Any]) -> None:
    command = shlex.join(words)
    if "approval-…" in command:  # the README says: the interrupt_id the first stream's interrupt event gave
        assert seen.get("interrupt_id"), "no interrupt before the approval's answer"
        words = [w.replace("approval-…", seen["interrupt_id"]) for w in words]
    status, body = curl(localised_words(words, live), live)
    assert "session_forbidden" not in body, (command, body)
    if status == 404 and '"action": "cancel"' in command:
        assert json.loads(body)["error"]["code"] == "no_active_run"  # the run it would stop has ended already
        return
    assert status == 200, (command, status, body)
    if interrupt := re.search(r'"interrupt_id":\s*"([^"]+)"', body):
        seen["interrupt_id"] = interrupt.group(1)
    if '"stream": true' in command:
        assert "event: agent_end" in body or "event: interrupt" in body, body[-500:]


def check_command(words: list[str], block: Block, servers: dict[str, LiveServer], tmp_path: Path,
                  seen: dict[str, Any]) -> None:
    command = shlex.join(words)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the program
        words = words[1:]
    name = words[0]
    live = servers["approvals" if "approval-…" in block.code else "plain"]
    if name == "make":
        targets = [w for w in words[1:] if "=" not in w]
        assert set(targets) <= make_targets(), (command, targets)
    elif name == "curl":
        check_curl(words, live, seen)
    elif name == "cp":
        source, target = words[1], words[2]
        assert (ROOT / source).is_file() and (ROOT / target).parent.is_dir(), command
    elif name in (".venv/bin/python", ".venv/bin/agentcore"):
        assert Path(program(name)).exists(), f"{name}: not in the venv make installs"
        argv = localised_words([program(w) for w in words], live)
        if "-m" in words:
            module = words[words.index("-m") + 1]
            assert importlib.util.find_spec(module) is not None, module
        elif words[1].endswith(".py"):
            assert (ROOT / words[1]).is_file(), words[1]
        done = subprocess.run(argv, cwd=ROOT, env=offline_env(tmp_path),
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        out = done.stdout
        if "test_streaming.py" in command:
            assert "all scenarios passed" in out and "FAIL" not in out, out
        elif "streaming_client_example.py" in command:
            assert "=== error handling" in out and "refused: HTTP 400 invalid_payload" in out, out
        else:  # the client's command line and the starter toolkit's local invoke: the answer
            assert "The result of 25 * 4 is 100." in out, out
    else:
        raise AssertionError(f"README.md:{block.line}: `{command}` is neither run, checked nor listed in NOT_RUN")


@pytest.mark.parametrize("block", BASH, ids=[b.id for b in BASH])
def test_bash_block_runs_or_is_checked(block, servers, tmp_path):
    seen: dict[str, Any] = {}
    for words in commands(block.code):
        if not_run(words) is None:
            check_command(words, block, servers, tmp_path, seen)


def test_every_command_not_run_is_still_in_the_readme():
    written = [words for b in BASH for words in commands(b.code)]
    for command in NOT_RUN:
        assert shlex.split(command) in written, f"NOT_RUN lists `{command}`, which the README no longer has"


def test_commands_in_the_text():
    spans = re.findall(r"`([^`\n]+)`", prose())
    targets = make_targets()
    for span in spans:
        if span.startswith("make "):
            assert span.split()[1] in targets, span
        # A command to type runs .venv's programs: a bare `python`, `pip` or `agentcore` is another installation's.
        assert not re.match(r"(python3?|pip3?) (-m \S+|\S+\.py)", span), f"`{span}`: .venv/bin/python …"
        if span.startswith(".venv/bin/"):
            assert Path(program(span.split()[0])).exists(), span
            if " -m " in span:
                module = span.split(" -m ", 1)[1].split()[0]
                assert "<" in module or importlib.util.find_spec(module) is not None, span


def test_paths_in_the_text_exist():
    roots = ("bedrock/", "tests/", "testkit/", "bench/", "docs/", "agentcore/", ".ci/")
    for span in set(re.findall(r"`([^`\s]+)`", prose())):
        if span.startswith(roots) and "<" not in span and "…" not in span and span not in CREATED_PATHS:
            path = span.split(":")[0].split("#")[0]
            assert (ROOT / path).exists(), f"`{span}` does not exist"


# --- links ------------------------------------------------------------------------------------------------------------

DOCUMENTS = [README, ROOT / "docs" / "STREAMING_GUIDE.md", ROOT / "bench" / "RESULTS.md"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_links_resolve_inside_the_repository(document):
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(document)):
        if re.match(r"https?://", target):
            continue
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        assert path.is_relative_to(ROOT), f"{document.name}: {target} is outside the repository"
        assert path.exists(), f"{document.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(path), f"{document.name}: {target}: no such heading"


# --- configuration --------------------------------------------------------------------------------------------------

def config_variables() -> dict[str, str | None]:
    """Every variable bedrock/config.py reads, with the Settings field it sets (None: several, or none)."""
    source = (ROOT / "bedrock" / "config.py").read_text()
    found: dict[str, str | None] = {}
    for line in source.splitlines():
        field = re.match(r"\s*(\w+)=", line)
        for name in re.findall(r'(?:env\.get\(|\(env, )"([A-Z][A-Z0-9_]+)"', line):
            found[name] = field.group(1) if field else None
    return found


def configuration_rows() -> dict[str, str]:
    """The README's configuration table: variable → its default cell."""
    section = prose().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_*]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")]
        for i, name in enumerate(names):
            rows[name] = defaults[i] if len(defaults) == len(names) else cells[1]
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]):  # `us-east-1` (or `AWS_DEFAULT_REGION`)
            rows.setdefault(name, cells[1])
    return rows


def written(value: Any) -> set[str]:
    """How the table may write a default."""
    if value in ("", ()):
        return {"unset"}
    if isinstance(value, bool):
        return {"1", "true"} if value else {"0", "false"}
    if isinstance(value, tuple):
        return {",".join(value)}
    if isinstance(value, float) and value.is_integer():
        return {str(int(value)), str(value)}
    return {str(value)}


# Defaults the table writes as what they mean rather than as the field's value.
MEANT = {"MODEL_THREADS": "MAX_CONCURRENT_INVOCATIONS + 16"}


def test_the_configuration_table_has_every_variable_with_its_default():
    rows = configuration_rows()
    defaults = Settings()
    for name, field in config_variables().items():
        assert name in rows, f"{name} (bedrock/config.py) has no row in the README's configuration table"
        cell = rows[name]
        assert cell, f"{name}: no default"
        first = re.match(r"`([^`]*)`|(\w+)", cell)
        assert first, (name, cell)
        shown_default = first.group(1) if first.group(1) is not None else first.group(2)
        if name in MEANT:
            assert shown_default == MEANT[name], (name, cell)
        elif field is not None and hasattr(defaults, field):
            assert shown_default in written(getattr(defaults, field)), (name, cell, getattr(defaults, field))
