"""The examples in examples/, served as a user would serve them: `langgraph-agentcore` installed as a dependency into
a virtualenv of their own (not this repository's code), each example copied outside the repository, and
`python -m bedrock.agent_runtime` run in its folder — so its `langgraph.json` says which graph. Everything over HTTP.

    examples/create_agent   LangChain v1 `create_agent`: tools, a system prompt, HumanInTheLoopMiddleware on refunds
    examples/stategraph     a StateGraph: an `interrupt`, a compiled subgraph as a node, get_stream_writer(), a model

The virtualenv has only the package itself in its own site-packages; its third-party dependencies come from this
repository's venv through a `.pth` line (fast: nothing is downloaded). The package goes in as a wheel (built from
the sources, read only: nothing is written into the working tree), installed by pip before that `.pth` line exists,
so pip never sees — and never uninstalls — the repository venv's editable install.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bedrock.wire.decoding import ParsedEvent, SSEDecoder
from testkit.env import OFFLINE_ENV
from testkit import loopback

pytestmark = pytest.mark.slow  # a virtualenv, a wheel, two servers started twice: ~60 s on 2 busy cores

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HTTP_TIMEOUT_S = 30.0  # any one request, a whole stream included
READY_TIMEOUT_S = 60.0
OFFLINE_SENTENCE = "I'm the offline model"


# --- the installation: a virtualenv outside the repository, the package installed into it -------------------------


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(root: Path, dest: Path) -> Path:
    """The package as a wheel (PEP 427), made from `root`'s pyproject.toml by setuptools' own rules — its packages
    (`packages.find`: folders with an `__init__.py`), their modules and their `package-data` — as `pip wheel .`
    would. Written here because this venv's setuptools (65, without the `wheel` package) has no `bdist_wheel` and
    a build with isolation would download a newer one (the tests use no network); a build in place would also
    write build/ and *.egg-info into the working tree."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    project, setuptools = config["project"], config["tool"]["setuptools"]
    name, version = project["name"], project["version"]
    dist = f"{name.replace('-', '_')}-{version}"
    included = setuptools["packages"]["find"]["include"]
    tops = {pattern.split(".")[0] for pattern in included}  # where packages.find looks
    packages = {".".join(init.parent.relative_to(root).parts): init.parent
                for top in sorted(tops) for init in sorted((root / top).rglob("__init__.py"))}
    packages = {dotted: folder for dotted, folder in packages.items()
                if any(fnmatch.fnmatchcase(dotted, pattern) for pattern in included)
                and all(parent in packages for parent in _parents(dotted))}
    paths = set()
    for dotted, folder in packages.items():
        paths.update(folder.glob("*.py"))
        for pattern in setuptools.get("package-data", {}).get(dotted, []):
            paths.update(path for path in folder.glob(pattern) if path.is_file())
    files = {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(paths)}
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                f"Requires-Python: {project['requires-python']}",
                *(f"Requires-Dist: {requirement}" for requirement in project["dependencies"])]
    files[f"{dist}.dist-info/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist}.dist-info/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tests/test_examples.py\n"
                                        b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist}.dist-info/top_level.txt"] = "".join(f"{p}\n" for p in packages if "." not in p).encode()
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def _parents(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="agentcore-examples-"))
    assert not folder.resolve().is_relative_to(ROOT)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def venv_python(workdir: Path) -> Path:
    """A virtualenv with `langgraph-agentcore` installed as a dependency: the python that serves the examples."""
    venv = workdir / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # this venv's own interpreter, not this venv
    _run([base, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"

    wheel = build_wheel(ROOT, workdir / "wheels")
    # This venv's pip installs into the new one (`--python`), which cannot see this venv yet: nothing to uninstall.
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)])

    where = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    purelib = Path(where.stdout.strip())
    dependencies = Path(sysconfig.get_paths()["purelib"])  # this venv's third-party packages, wherever it is
    (purelib / "_repo_dependencies.pth").write_text(f"{dependencies}\n")

    shown = _run([str(python), "-c", "import bedrock, langchain_core as dependency; print(bedrock.__file__); "
                  "print(dependency.__file__)"], cwd=workdir, env=_clean_env({}))
    bedrock_file, dependency_file = (Path(line) for line in shown.stdout.split())
    assert bedrock_file.is_relative_to(purelib), bedrock_file  # the installed package, not the repository's
    assert not bedrock_file.resolve().is_relative_to(ROOT)
    assert dependency_file.is_relative_to(dependencies)
    return python


def test_the_package_is_installed_as_a_dependency(venv_python: Path, workdir: Path) -> None:
    """What a user has after `pip install`: `bedrock` from site-packages, its chat page's files included."""
    out = _run([str(venv_python), "-c", "import bedrock.server, importlib.metadata as m, pathlib; "
                "print(pathlib.Path(bedrock.server.__file__).parent); print(m.version('langgraph-agentcore'))"],
               cwd=workdir, env=_clean_env({})).stdout.split()
    static = Path(out[0]) / "static"
    assert (static / "index.html").is_file() and (static / "vendor" / "eventsource-parser" / "parse.js").is_file()
    assert out[1] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# --- a served example ----------------------------------------------------------------------------------------------


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """No variable of this test process's own (its AGENT_MEMORY_PATH, a PYTHONPATH): the offline environment and
    `extra` alone."""
    keep = {key: os.environ[key] for key in ("PATH", "LANG", "TMPDIR") if key in os.environ}
    return {**keep, **OFFLINE_ENV, **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExampleServer:
    """`python -m bedrock.agent_runtime` run in a copy of an example (its langgraph.json, its `.env` made from
    `.env.example` as its README says), memory in SQLite beside it; `restart()` keeps that memory."""

    def __init__(self, python: Path, example: str, workdir: Path) -> None:
        self.python = python
        self.folder = workdir / example
        shutil.copytree(EXAMPLES / example, self.folder, ignore=shutil.ignore_patterns("__pycache__", ".env"))
        shutil.copy2(self.folder / ".env.example", self.folder / ".env")
        self.memory = workdir / f"{example}-memory" / "checkpoints.sqlite"
        self.log_path = workdir / f"{example}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process (`wait_ready` waits for it: servers launched together start side by side)."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = _clean_env({
            "PORT": str(self.port), "BIND_HOST": "127.0.0.1", "MEMORY_BACKEND": "sqlite",
            "AGENT_MEMORY_PATH": str(self.memory), "OFFLINE_TOKEN_DELAY_MS": "0",
            "TOKEN_BUFFER_SIZE": "1",  # one word an event: every model call's tokens are seen as they stream
            "SERVE_UI": "0",
        })
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([str(self.python), "-m", "bedrock.agent_runtime"], cwd=self.folder,
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        self.deadline = time.monotonic() + READY_TIMEOUT_S

    def wait_ready(self) -> None:
        assert self.process is not None
        while time.monotonic() < self.deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.log()}")
            try:
                if loopback.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server never answered /ping:\n{self.log()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    # --- HTTP, every call bounded ---

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        return loopback.post(self.url + "/invocations", json=payload, timeout=HTTP_TIMEOUT_S)

    def stream(self, payload: dict[str, Any]) -> list[ParsedEvent]:
        """A streamed turn's events, up to its terminal one (the whole stream within HTTP_TIMEOUT_S)."""
        decoder, events = SSEDecoder(), []
        deadline = time.monotonic() + HTTP_TIMEOUT_S
        body = {"stream": True, "stream_tokens": True, **payload}
        with loopback.stream("POST", self.url + "/invocations", json=body, timeout=HTTP_TIMEOUT_S) as reply:
            assert reply.status_code == 200, reply.read()
            for chunk in reply.iter_bytes():
                events += decoder.feed(chunk)
                if events and events[-1]["type"] in ("agent_end", "error"):
                    break
                assert time.monotonic() < deadline, f"no terminal event within {HTTP_TIMEOUT_S} s: {events}"
        assert events and events[-1]["type"] == "agent_end", events[-1:]
        return events

    def history(self, session_id: str) -> dict[str, Any]:
        reply = self.post({"action": "history", "session_id": session_id})
        assert reply.status_code == 200, reply.text
        return reply.json()


def start_all(servers: list[ExampleServer]) -> None:
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise


@pytest.fixture(scope="module")
def servers(venv_python: Path, workdir: Path) -> Iterator[dict[str, ExampleServer]]:
    """Both examples, served side by side (each in its own copy, with its own memory)."""
    started = {name: ExampleServer(venv_python, name, workdir) for name in ("create_agent", "stategraph")}
    start_all(list(started.values()))
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def create_agent(servers: dict[str, ExampleServer]) -> ExampleServer:
    return servers["create_agent"]


@pytest.fixture(scope="module")
def stategraph(servers: dict[str, ExampleServer]) -> ExampleServer:
    return servers["stategraph"]


def session() -> str:
    return f"example-{uuid.uuid4().hex}"


def of_type(events: list[ParsedEvent], kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["type"] == kind]


def steps(events: list[ParsedEvent], **match: Any) -> list[dict[str, Any]]:
    return [data for data in of_type(events, "agent_step") if all(data.get(k) == v for k, v in match.items())]


def assert_tokens_stream(events: list[ParsedEvent], node: str, minimum: int = 5) -> None:
    """Every model call of the turn streamed: its message's text arrived as `llm_token`s, before the message's own
    step, each naming the node that called the model — and the turn streamed at least `minimum` of them."""
    types = [event["type"] for event in events]
    tokens = of_type(events, "llm_token")
    assert len(tokens) >= minimum, tokens
    assert max(i for i, kind in enumerate(types) if kind == "llm_token") < types.index("agent_end")
    assert {token["node"] for token in tokens} == {node}
    answers = steps(events, type="ai")
    assert answers and all(answer["node"] == node for answer in answers)
    for answer in answers:  # one model call each: its tokens carry its step, and spell its text
        own_tokens = [token for token in tokens if token["step"] == answer["step"]]
        assert own_tokens, f"no tokens for the model call of step {answer['step']}"
        assert "".join(token["token"] for token in own_tokens) == answer["content"]
        first = next(i for i, e in enumerate(events) if e["type"] == "llm_token" and e["data"] is own_tokens[0])
        assert first < next(i for i, e in enumerate(events) if e["data"] is answer)


def call(tool: str, **args: Any) -> str:
    """A prompt the offline model answers with a call of `tool` (its `NAME({...})` convention)."""
    return f"{tool}({json.dumps(args)})"


# --- examples/create_agent --------------------------------------------------------------------------------------------


def ask_refund(server: ExampleServer, session_id: str, amount: float = 49.9) -> dict[str, Any]:
    """A turn that asks for a refund: it stops at the human-in-the-loop interrupt; returns that interrupt."""
    events = server.stream({"prompt": call("refund", order_id="A-1001", amount=amount), "session_id": session_id})
    end = events[-1]["data"]
    assert end["status"] == "interrupted"
    assert not steps(events, type="tool")  # the refund did not run
    (interrupt,) = of_type(events, "interrupt")
    assert end["interrupts"] == [interrupt]
    assert interrupt["node"] == "HumanInTheLoopMiddleware.after_model"
    (request,) = interrupt["value"]["action_requests"]
    assert (request["name"], request["args"]) == ("refund", {"order_id": "A-1001", "amount": amount})
    assert_tokens_stream(events, "model", minimum=3)  # "I'll call refund." before the interrupt
    return interrupt


def decide(server: ExampleServer, session_id: str, interrupt: dict[str, Any],
           decision: dict[str, Any]) -> list[ParsedEvent]:
    """Answer the interrupt with one HITL decision (`{"decisions": [...]}`, one per refund call)."""
    events = server.stream({"session_id": session_id, "resume": {
        "interrupt_id": interrupt["interrupt_id"], "value": {"decisions": [decision]}}})
    assert events[-1]["data"]["status"] == "completed"
    return events


def test_create_agent_runs_its_own_tools_offline_streaming_tokens(create_agent: ExampleServer) -> None:
    events = create_agent.stream({"prompt": call("lookup_order", order_id="A-1001"), "session_id": session()})
    (looked_up,) = steps(events, type="tool")
    assert (looked_up["node"], looked_up["tool_name"], looked_up["status"]) == ("tools", "lookup_order", "success")
    assert json.loads(looked_up["content"])["status"] == "delivered"
    assert_tokens_stream(events, "model")
    assert [step["content"] for step in steps(events, type="ai")][0] == "I'll call lookup_order."
    end = events[-1]["data"]
    assert end["output"] == f"lookup_order returned: {looked_up['content']}"
    assert (end["metrics"]["llm_calls"], end["metrics"]["tool_calls"]) == (2, 1)


def test_create_agent_refund_approved(create_agent: ExampleServer) -> None:
    session_id = session()
    interrupt = ask_refund(create_agent, session_id)
    pending = create_agent.history(session_id)["pending"]
    assert [p["interrupt_id"] for p in pending] == [interrupt["interrupt_id"]]

    events = decide(create_agent, session_id, interrupt, {"type": "approve"})
    (refunded,) = steps(events, type="tool")
    assert (refunded["node"], refunded["tool_name"]) == ("tools", "refund")
    assert refunded["content"] == "Refunded 49.90 EUR on order A-1001."
    assert_tokens_stream(events, "model")
    assert events[-1]["data"]["output"] == "refund returned: Refunded 49.90 EUR on order A-1001."
    assert create_agent.history(session_id)["pending"] == []


def test_create_agent_refund_edited(create_agent: ExampleServer) -> None:
    session_id = session()
    interrupt = ask_refund(create_agent, session_id)
    edited = {"type": "edit", "edited_action": {"name": "refund", "args": {"order_id": "A-1001", "amount": 10}}}
    events = decide(create_agent, session_id, interrupt, edited)
    (refunded,) = steps(events, type="tool")
    assert refunded["tool_name"] == "refund"
    # The middleware tells the model a person changed the call, then the tool's own result: with the edited amount.
    assert refunded["content"].endswith("Refunded 10.00 EUR on order A-1001.")
    assert "49.90" not in refunded["content"]
    assert_tokens_stream(events, "model")


def test_create_agent_refund_rejected(create_agent: ExampleServer) -> None:
    session_id = session()
    interrupt = ask_refund(create_agent, session_id)
    events = decide(create_agent, session_id, interrupt, {"type": "reject", "message": "Not for a used kettle."})
    assert not steps(events, node="tools")  # the tool never ran
    (answered,) = steps(events, type="tool")  # the middleware's answer in its place
    assert answered["status"] == "error" and "Not for a used kettle." in answered["content"]
    assert "Refunded" not in json.dumps(events[-1]["data"])
    assert_tokens_stream(events, "model")
    assert events[-1]["data"]["output"].startswith("refund failed: User rejected the tool call for `refund`")


def test_create_agent_memory_and_history(create_agent: ExampleServer) -> None:
    """A second turn sees the first (the offline model recalls a name only from the conversation it is sent), and
    `history` has both, naming the graph's own nodes."""
    session_id = session()
    first_prompt = "My name is Ada. " + call("lookup_order", order_id="A-1002")
    create_agent.stream({"prompt": first_prompt, "session_id": session_id})
    second = create_agent.stream({"prompt": "What's my name?", "session_id": session_id})
    assert second[-1]["data"]["output"] == "Your name is Ada."
    assert create_agent.stream({"prompt": "What's my name?", "session_id": session()})[-1]["data"]["output"] != (
        "Your name is Ada.")  # another session knows nothing of it
    history = create_agent.history(session_id)
    shown = [(m["node"], m["type"]) for m in history["messages"]]
    assert shown == [("input", "human"), ("model", "ai"), ("tools", "tool"), ("model", "ai"),
                     ("input", "human"), ("model", "ai")]
    assert [m["content"] for m in history["messages"] if m["type"] == "human"] == [first_prompt, "What's my name?"]
    assert history["messages"][-1]["content"] == "Your name is Ada."


def test_create_agent_stale_interrupt_is_refused(create_agent: ExampleServer) -> None:
    session_id = session()
    first = ask_refund(create_agent, session_id)
    decide(create_agent, session_id, first, {"type": "approve"})
    answer = {"session_id": session_id, "stream": True,
              "resume": {"interrupt_id": first["interrupt_id"], "value": {"decisions": [{"type": "approve"}]}}}
    reply = create_agent.post(answer)  # answered already: nothing waits
    assert (reply.status_code, reply.json()["error"]["code"]) == (409, "nothing_to_resume")

    second = ask_refund(create_agent, session_id, amount=5.0)
    reply = create_agent.post(answer)  # another interrupt waits: the old id is not it
    assert (reply.status_code, reply.json()["error"]["code"]) == (409, "interrupt_mismatch")
    reply = create_agent.post({"prompt": "Hello?", "session_id": session_id})  # the graph waits for its answer
    assert (reply.status_code, reply.json()["error"]["code"]) == (409, "interrupt_pending")
    events = decide(create_agent, session_id, second, {"type": "approve"})
    assert [s["content"] for s in steps(events, type="tool")] == ["Refunded 5.00 EUR on order A-1001."]


# --- examples/stategraph ----------------------------------------------------------------------------------------------

PROGRESS = [{"stage": "history", "progress": 33}, {"stage": "food", "progress": 67},
            {"stage": "transport", "progress": 100}, {"stage": "summary", "progress": 100}]


def ask_city(server: ExampleServer, session_id: str) -> dict[str, Any]:
    events = server.stream({"prompt": "What should I see?", "session_id": session_id})
    assert events[-1]["data"]["status"] == "interrupted"
    (interrupt,) = of_type(events, "interrupt")
    assert (interrupt["value"], interrupt["node"], interrupt["namespace"]) == ("Which city?", "ask_city", [])
    assert not of_type(events, "llm_token") and not of_type(events, "custom")  # nothing ran past the question
    return interrupt


def assert_researched(events: list[ParsedEvent], city: str) -> None:
    """The subgraph's progress as `custom` events, in order, from its nodes; then the model's answer, streamed."""
    custom = of_type(events, "custom")
    assert [c["value"] for c in custom] == PROGRESS
    assert [(c["node"], c["namespace"]) for c in custom] == [("gather", ["research"])] * 3 + [
        ("summarise", ["research"])]
    assert_tokens_stream(events, "answer")
    (answer,) = steps(events, type="ai")
    assert f"The user's city is {city}." in answer["content"]  # the offline model quotes the system prompt it got
    (researched,) = steps(events, node="research")
    assert (researched["type"], researched["values"]["city"]) == ("update", city)


def test_stategraph_interrupt_answered(stategraph: ExampleServer) -> None:
    session_id = session()
    interrupt = ask_city(stategraph, session_id)
    events = stategraph.stream({"session_id": session_id, "include_state": True,
                                "resume": {"interrupt_id": interrupt["interrupt_id"], "value": "Paris"}})
    (asked,) = steps(events, node="ask_city")
    assert asked["values"] == {"city": "Paris"}  # exactly the value sent
    assert_researched(events, "Paris")
    state = events[-1]["data"]["state"]
    assert (state["city"], state["progress"]) == ("Paris", 100)
    assert state["notes"] == [f"{source} of Paris: looked up" for source in ("history", "food", "transport")]
    assert [m["type"] for m in state["messages"]] == ["human", "ai"]

    reply = stategraph.post({"session_id": session_id,
                             "resume": {"interrupt_id": interrupt["interrupt_id"], "value": "Rome"}})
    assert (reply.status_code, reply.json()["error"]["code"]) == (409, "nothing_to_resume")


def test_stategraph_remembers_across_turns(stategraph: ExampleServer) -> None:
    session_id = session()
    interrupt = ask_city(stategraph, session_id)
    stategraph.stream({"session_id": session_id, "resume": {"interrupt_id": interrupt["interrupt_id"],
                                                              "value": "Lisbon"}})
    events = stategraph.stream({"prompt": "And where should I eat?", "session_id": session_id})
    assert not of_type(events, "interrupt")  # the city is known: not asked again
    assert_researched(events, "Lisbon")
    history = stategraph.history(session_id)
    assert [(m["node"], m["type"]) for m in history["messages"]] == [
        ("input", "human"), ("answer", "ai"), ("input", "human"), ("answer", "ai")]
    assert [m["content"] for m in history["messages"] if m["type"] == "human"] == [
        "What should I see?", "And where should I eat?"]


def test_interrupts_survive_a_restart(create_agent: ExampleServer, stategraph: ExampleServer) -> None:
    """An interrupt waits in the session's memory (SQLite), not in the process: new server processes on the same
    files show it pending, and take its answer. (Both examples at once: one restart, side by side.)"""
    refund_session, city_session = session(), session()
    refund = ask_refund(create_agent, refund_session)
    city = ask_city(stategraph, city_session)
    for server in (create_agent, stategraph):
        server.stop()
    start_all([create_agent, stategraph])

    assert [p["interrupt_id"] for p in create_agent.history(refund_session)["pending"]] == [refund["interrupt_id"]]
    events = decide(create_agent, refund_session, refund, {"type": "approve"})
    assert [s["content"] for s in steps(events, type="tool")] == ["Refunded 49.90 EUR on order A-1001."]

    assert [p["value"] for p in stategraph.history(city_session)["pending"]] == ["Which city?"]
    events = stategraph.stream({"session_id": city_session, "include_state": True,
                                "resume": {"interrupt_id": city["interrupt_id"], "value": "Paris"}})
    assert_researched(events, "Paris")
    assert events[-1]["data"]["state"]["city"] == "Paris"
