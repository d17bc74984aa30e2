"""`import bedrock`: a curated public API that loads nothing until a name is used."""

from __future__ import annotations

import subprocess
import sys

import bedrock
from testkit.live_server import ROOT


def test_importing_the_package_loads_nothing_else():
    code = "import sys, bedrock; print(sorted(m for m in sys.modules if m.startswith('bedrock')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['bedrock']"


def test_every_public_name_resolves_to_where_it_lives():
    for name in bedrock.__all__:
        value = getattr(bedrock, name)
        assert getattr(value, "__name__", name) == name, name
    assert set(bedrock.__all__) <= set(dir(bedrock))
    from bedrock.client import AgentClient
    from bedrock.server.app import build_app

    assert bedrock.AgentClient is AgentClient and bedrock.build_app is build_app


def test_an_unknown_name_is_an_attribute_error():
    try:
        bedrock.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_python_m_bedrock_client_loads_the_client_once():
    # Run as `-m`, a module that is also imported under its package name would load twice (RuntimeWarning).
    result = subprocess.run([sys.executable, "-W", "error", "-m", "bedrock.client", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "usage: python -m bedrock.client" in result.stdout, result.stderr
