"""The package as built: its pins agree with the venv's, its stubs are generated from the current
proto (never committed), and an sdist built away from the checkout still carries the proto."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest
from google.protobuf import descriptor_pb2

from attnd.v1 import attention_pb2

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = REPO / "client" / "python"


def pins(path: pathlib.Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip()):
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_pyproject_pins_equal_the_venv_pins():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    declared = (project["build-system"]["requires"] + project["project"]["dependencies"]
                + project["project"]["optional-dependencies"]["test"]
                + project["project"]["optional-dependencies"]["torch"])
    venv = pins(PACKAGE / "requirements-dev.txt") | pins(PACKAGE / "requirements-torch.txt")
    for requirement in declared:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement} is not pinned exactly"
        assert venv.get(name.lower()) == version, f"{requirement}: the venv pins {venv.get(name)}"


def test_stubs_match_the_proto_and_are_not_committed(tmp_path):
    from grpc_tools import protoc
    out = tmp_path / "set.pb"
    assert protoc.main(["protoc", f"-I{REPO / 'proto'}", f"--descriptor_set_out={out}",
                        "attnd/v1/attention.proto"]) == 0
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in fresh.message_type:  # the generated module leaves json_name out (no nesting)
        for field in message.field:
            field.ClearField("json_name")
    installed = descriptor_pb2.FileDescriptorProto.FromString(
        attention_pb2.DESCRIPTOR.serialized_pb)
    assert installed == fresh, "installed stubs are stale: run client/python/dev_install.py"
    assert not (PACKAGE / "attnd" / "v1").exists()
    if shutil.which("git") and (REPO / ".git").exists():
        tracked = subprocess.run(["git", "ls-files", "client/python"], cwd=REPO, check=True,
                                 capture_output=True, text=True).stdout
        assert "_pb2" not in tracked


def test_sdist_builds_a_wheel_with_stubs_away_from_the_checkout(tmp_path):
    pytest.importorskip("setuptools")
    work = tmp_path / "src"
    shutil.copytree(PACKAGE, work, ignore=shutil.ignore_patterns("build", "*.egg-info", "dist"))
    # No ../../proto here: the sdist must carry its own copy.
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")],
                   cwd=work, check=True, capture_output=True,
                   env={"ATTND_PROTO_DIR": str(REPO / "proto"), "PATH": "/usr/bin:/bin"})
    sdist = next((tmp_path / "dist").glob("attnd-*.tar.gz"))
    with tarfile.open(sdist) as t:
        assert any(n.endswith("proto/attnd/v1/attention.proto") for n in t.getnames())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(sdist)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "wheels").glob("attnd-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("attnd/client.py", "attnd/v1/__init__.py", "attnd/v1/attention_pb2.py",
                   "attnd/v1/attention_pb2_grpc.py"):
        assert module in names
