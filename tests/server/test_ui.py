"""The chat page's routes (bedrock/server/ui.py): served with its security headers, off with SERVE_UI=0,
nothing outside its folder, no inline code in it, its vendored parser as published."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from bedrock.config import ConfigError, Settings
from bedrock.server.app import build_app
from bedrock.server.ui import CONTENT_SECURITY_POLICY, STATIC

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client():
    from starlette.testclient import TestClient

    with TestClient(build_app(Settings())) as test_client:
        yield test_client


def test_the_page_and_its_files_carry_the_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-cache"
    for path, kind in (("/ui/chat.js", "javascript"), ("/ui/chat.css", "text/css"), ("/ui/icon.svg", "svg"),
                       ("/ui/vendor/eventsource-parser/stream.js", "javascript")):
        response = client.get(path)
        assert response.status_code == 200 and kind in response.headers["content-type"], path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405


def test_the_policy_allows_nothing_inline_and_nothing_from_elsewhere():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name


@pytest.mark.parametrize("path", ["/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/..%2fapp.py", "/ui/vendor/../../ui.py",
                                  "/ui/", "/ui/missing.js", "/index.html"])
def test_nothing_outside_the_static_folder(client, path):
    response = client.get(path)
    assert response.status_code == 404, path
    assert b"import" not in response.content


def test_serve_ui_0_leaves_the_page_out_and_the_agent_in():
    from starlette.testclient import TestClient

    with TestClient(build_app(Settings(serve_ui=False))) as off:
        assert off.get("/").status_code == 404 and off.get("/ui/chat.js").status_code == 404
        assert off.post("/invocations", json={"prompt": "What is 25 * 4?"}).status_code == 200


@pytest.mark.parametrize("raw, expected", [("0", False), ("false", False), ("off", False), ("1", True),
                                           ("yes", True), ("", True)])
def test_serve_ui_setting(raw, expected):
    assert Settings.from_env({"SERVE_UI": raw}).serve_ui is expected


def test_serve_ui_refuses_what_it_cannot_read():
    with pytest.raises(ConfigError, match="SERVE_UI"):
        Settings.from_env({"SERVE_UI": "maybe"})


def test_the_container_keeps_the_page_off():
    assert re.search(r"^\s*SERVE_UI=0 \\$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)


def test_no_inline_code_and_text_is_never_parsed_as_html():
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [] and "<style" not in html
    assert re.search(r"\s(on\w+|style)=", html) is None
    script = (STATIC / "chat.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_the_vendored_parser_is_as_published():
    folder = STATIC / "vendor" / "eventsource-parser"
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (folder / "SOURCE").read_text(), re.MULTILINE)
    assert {name for _, name in listed} == {p.name for p in folder.iterdir() if p.name != "SOURCE"}
    for digest, name in listed:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_every_static_file_is_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = patterns["bedrock.server"]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(STATIC.parent)
            assert any(relative.match(pattern) for pattern in globs), relative


def test_the_page_names_every_control():
    html = (STATIC / "index.html").read_text()
    assert '<label for="prompt">' in html and 'aria-label="Conversation"' in html
    for button in re.findall(r"<button[^>]*>([^<]*)</button>", html):
        assert button.strip(), "a button without a name"
    assert 'src="/ui/chat.js"' in html and 'type="module"' in html
