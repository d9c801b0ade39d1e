"""The README's examples run as written, against a real Bastion."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from asgi_server import serving
from real_bastion import RealBastion

README = Path(__file__).parents[1] / "README.md"
README_BASTION_URL = "http://127.0.0.1:8000"


def example(containing: str) -> str:
    """The README's runnable Python example that contains ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    matching = [block for block in blocks if containing in block and "\napp = " in block]
    assert len(matching) == 1, f"{len(matching)} runnable examples contain {containing!r}"
    return str(matching[0])


def load(source: str, bastion: RealBastion, path: Path) -> ModuleType:
    """``source`` saved as a module, with the README's Bastion address swapped for the test's."""
    path.write_text(source.replace(README_BASTION_URL, bastion.url))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    return module


async def test_the_quick_start_protects_an_endpoint(
    bastion: RealBastion, bastion_user: str, tmp_path: Path
) -> None:
    main = load(example("verifier.require()"), bastion, tmp_path / "readme_main.py")
    session = bastion.log_in(bastion_user)
    async with serving(main.app) as client:
        response = await client.get("/tasks", headers={"Authorization": f"Bearer {session.token}"})
        assert response.status_code == 200, response.text
        claims = await main.verifier.verify_async(session.token)
        assert response.json() == {"user": claims.sub, "email": bastion_user}
        refused = await client.get("/tasks")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"


async def test_the_starlette_example_protects_an_app(
    bastion: RealBastion, bastion_user: str, tmp_path: Path
) -> None:
    module = load(example("BearerAuthMiddleware"), bastion, tmp_path / "readme_starlette.py")
    session = bastion.log_in(bastion_user)
    async with serving(module.app) as client:
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {session.token}"})
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"user"}
        assert (await client.get("/whoami")).status_code == 401
