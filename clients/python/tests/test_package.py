"""What a resource server installs and imports: the verifier alone, never the server."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_the_package_depends_only_on_pyjwt_and_httpx() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["name"] == "bastion-verifier"
    names = sorted(
        requirement.split("[")[0].split(">")[0] for requirement in project["dependencies"]
    )
    assert names == ["httpx", "pyjwt"]


def test_importing_it_loads_neither_the_server_nor_a_web_framework() -> None:
    probe = (
        "import sys, bastion_verifier\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'bastion', 'sqlalchemy', 'argon2', 'fastapi', 'starlette'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
