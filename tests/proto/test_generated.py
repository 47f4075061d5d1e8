"""The generated protobuf code: reproducible from protos/, and importable on every
protobuf runtime setup.cfg admits (4.25 to 7.x), each in a fresh virtual environment."""

import os
import shutil
import subprocess
import sys

import pytest

from support import PEERS, unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".cache")


def _venv(name: str, *packages: str) -> str:
    """A cached virtual environment with `packages`; skips (fails in CI) if pip cannot fetch."""
    path = os.path.join(CACHE, name)
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(os.path.join(path, ".ready")):
        shutil.rmtree(path, ignore_errors=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", path], check=True, capture_output=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                           check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            stderr = (exc.stderr or b"")[-2000:]
            unavailable(f"cannot build a venv with {packages}: {exc}\n{stderr.decode(errors='replace')}", PEERS)
        open(os.path.join(path, ".ready"), "w").close()
    return python


ROUND_TRIP = """
import sys
sys.path.insert(0, sys.argv[1])
import google.protobuf
from seldon_routers.proto import prediction_pb2 as pb
m = pb.SeldonMessage(strData="x")
m.meta.routing["r"] = 2
m.data.tftensor.dtype = 1
back = pb.SeldonMessage.FromString(m.SerializeToString())
assert back.meta.routing["r"] == 2 and back.data.tftensor.dtype == 1
print(google.protobuf.__version__)
"""


@pytest.mark.parametrize("protobuf", ["protobuf==4.25.0", "protobuf<8"])
def test_generated_code_imports_on_supported_runtimes(protobuf, tmp_path):
    python = _venv("pb-" + protobuf.replace("=", "").replace("<", "lt"), protobuf)
    # Only the proto package, not seldon_routers/__init__ (numpy is not in this venv).
    pkg = tmp_path / "seldon_routers"
    shutil.copytree(os.path.join(ROOT, "seldon_routers", "proto"), pkg / "proto")
    (pkg / "__init__.py").write_text("")
    out = subprocess.run([python, "-W", "error", "-c", ROUND_TRIP, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_generated_code_is_reproducible_from_protos(tmp_path):
    venv = os.path.dirname(os.path.dirname(_venv("protoc-grpcio-tools-1.62.3", "grpcio-tools==1.62.3")))
    out = tmp_path / "gen"
    out.mkdir()
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "gen_protos.sh")], check=True, capture_output=True,
                   env={**os.environ, "GEN_PROTOS_VENV": venv, "GEN_PROTOS_OUT": str(out)})
    for name in ("prediction_pb2.py", "tensor_pb2.py"):
        with open(os.path.join(ROOT, "seldon_routers", "proto", name)) as committed:
            assert (out / name).read_text() == committed.read(), f"{name} is stale: run scripts/gen_protos.sh"
