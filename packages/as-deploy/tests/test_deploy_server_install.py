"""`uv add as-deploy` installs the server and nothing of the benchmark tool.

The environment is the isolation check's (``scripts/check_isolation.py``): as-deploy's
wheel built without workspace sources, with the sibling wheels it declares, in a fresh
virtual environment outside the repository. Its dependencies come from the registry,
hence ``network``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import _workspace  # noqa: E402  (the workspace's scripts folder, added above)
import check_isolation  # noqa: E402

#: What the server must never pull in: the benchmark tool and its heavy libraries.
NOT_IN_A_SERVER = {"as-bench", "torch", "polars", "pyarrow", "matplotlib"}

_PROBE = """
import importlib.metadata as md, json
from as_deploy.export import check_format
print(json.dumps(sorted(d.metadata["Name"].lower().replace("_", "-") for d in md.distributions())))
try:
    check_format("onnx")
except ImportError as exc:
    print(exc.hint)
"""


@pytest.mark.network
@pytest.mark.slow
def test_deploy_server_install_has_no_benchmark_dependencies(tmp_path: Path) -> None:
    members = _workspace.members()
    needed = _workspace.sibling_closure("as-deploy", members)
    assert "as-bench" not in needed, needed
    wheels = check_isolation.build_wheels(needed, tmp_path / "dist")
    (tmp_path / "venvs").mkdir()
    venv = check_isolation.make_venv("as-deploy", wheels, members, tmp_path / "venvs")
    assert check_isolation.check_member(members["as-deploy"], venv, members) == []
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    listing, hint = done.stdout.splitlines()
    installed = set(json.loads(listing))
    assert {"as-deploy", "fastapi", "onnxruntime", "uvicorn"} <= installed
    assert not installed & NOT_IN_A_SERVER, sorted(installed & NOT_IN_A_SERVER)
    # Exporting says exactly what to install.
    assert hint.startswith('uv add "as-deploy[export]"')
