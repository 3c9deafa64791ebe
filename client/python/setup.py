"""Build hook: generates attnd.v1 (the protobuf and gRPC stubs) from proto/ with grpcio-tools.

The stubs are written into the build tree (build_py's build_lib), so they land in the wheel and
never in the source tree. The proto is found, in order, at $ATTND_PROTO_DIR, at proto/ beside this
file (an sdist: the sdist command below copies it there), or at ../../proto (a checkout).
"""

import os
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = pathlib.Path(__file__).resolve().parent
PROTO_FILE = "attnd/v1/attention.proto"  # relative to the proto root; its package is attnd.v1


def proto_root() -> pathlib.Path:
    candidates = [HERE / "proto", HERE.parent.parent / "proto"]
    if os.environ.get("ATTND_PROTO_DIR"):
        candidates.insert(0, pathlib.Path(os.environ["ATTND_PROTO_DIR"]))
    for root in candidates:
        if (root / PROTO_FILE).is_file():
            return root
    raise FileNotFoundError(
        f"{PROTO_FILE} not found under any of {[str(c) for c in candidates]}; "
        "set ATTND_PROTO_DIR to the folder holding attnd/v1/attention.proto")


def generate_stubs(out_dir: pathlib.Path) -> None:
    """Writes attnd/v1/{__init__,attention_pb2,attention_pb2_grpc}.py (+ .pyi) under out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    # grpc_tools ships the well-known types (google/protobuf/*.proto) in its _proto folder.
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", str(root / PROTO_FILE)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {root / PROTO_FILE}")
    # The generated modules import each other as attnd.v1.*, so attnd/v1 must be a package.
    init = out_dir / "attnd" / "v1" / "__init__.py"
    init.write_text('"""Generated from proto/attnd/v1/attention.proto at build time."""\n')


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate_stubs(pathlib.Path(self.build_lib))


class SdistWithProto(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        target = pathlib.Path(base_dir) / "proto" / PROTO_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto_root() / PROTO_FILE, target)


setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProto})
