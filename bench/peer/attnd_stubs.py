"""attnd's protobuf messages for the Python peer, generated from proto/ and never committed.

Where they come from, in order:
  1. grpcio-tools, at run time, into a temporary folder;
  2. a `protoc` on PATH, likewise;
  3. a folder generated earlier by `python3 attnd_stubs.py --out DIR` (bench/serving/bundle.sh
     does it into the git-ignored .device/serving/, which travels to the GPU machine, whose
     Python has grpcio and protobuf but no grpcio-tools).
A folder holds attnd/v1/attention_pb2.py and attention.desc (a serialized FileDescriptorSet). The
generated module is imported first; when this protobuf runtime refuses it (gencode newer than
the runtime), the messages are built from the descriptor set instead, which any protobuf 3.20+
runtime reads.

Only messages are needed: the peer registers its handlers with grpc's generic API, so no
*_pb2_grpc module (and no grpcio version check) is involved.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROTO_ROOT = os.path.join(REPO, "proto")
PROTO_FILE = "attnd/v1/attention.proto"
PACKAGE = "attnd.v1"
MESSAGES = ("Tensor", "SlidingWindow", "AttendRequest", "Execution", "RequestStatus",
            "AttendResponse", "GetServerInfoRequest", "DeviceInfo", "Limits", "ServerInfo")
ENUMS = ("DType", "Layout", "Causal", "Variant")


def generate(out_dir, proto_root=PROTO_ROOT):
    """Writes attnd/v1/attention_pb2.py and attention.desc into out_dir; returns the tool used."""
    os.makedirs(out_dir, exist_ok=True)
    args = ["-I" + proto_root, "--python_out=" + out_dir,
            "--descriptor_set_out=" + os.path.join(out_dir, "attention.desc"),
            "--include_imports", PROTO_FILE]
    try:
        from grpc_tools import protoc  # noqa: PLC0415 (optional dependency)
        import importlib.resources as resources  # noqa: PLC0415
        include = str(resources.files("grpc_tools") / "_proto")
        if protoc.main(["protoc", "-I" + include] + args) != 0:
            raise RuntimeError("grpc_tools.protoc failed")
        return "grpcio-tools"
    except ImportError:
        pass
    protoc_bin = shutil.which("protoc")
    if protoc_bin is None:
        raise RuntimeError("neither grpcio-tools nor protoc is available to generate the stubs")
    subprocess.run([protoc_bin] + args, check=True)
    return "protoc"


def _from_module(path):
    spec = importlib.util.spec_from_file_location("attnd_peer_attention_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ns = types.SimpleNamespace(source="module " + path)
    for name in MESSAGES:
        setattr(ns, name, getattr(module, name))
    for enum in ENUMS:
        for value in module.DESCRIPTOR.enum_types_by_name[enum].values:
            setattr(ns, value.name, value.number)
    return ns


def _from_descriptor_set(path):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: PLC0415
    with open(path, "rb") as f:
        files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    ns = types.SimpleNamespace(source="descriptor set " + path)
    for name in MESSAGES:
        descriptor = pool.FindMessageTypeByName(PACKAGE + "." + name)
        if hasattr(message_factory, "GetMessageClass"):
            cls = message_factory.GetMessageClass(descriptor)
        else:  # protobuf < 4.21
            cls = message_factory.MessageFactory(pool).GetPrototype(descriptor)
        setattr(ns, name, cls)
    for enum in ENUMS:
        for value in pool.FindEnumTypeByName(PACKAGE + "." + enum).values:
            setattr(ns, value.name, value.number)
    return ns


def load_from(folder):
    """The messages from a generated folder: the module, else the descriptor set."""
    module = os.path.join(folder, "attnd", "v1", "attention_pb2.py")
    errors = []
    if os.path.exists(module):
        try:
            return _from_module(module)
        except Exception as e:  # noqa: BLE001 (a VersionError, an old runtime's TypeError...)
            errors.append(f"{module}: {e}")
    desc = os.path.join(folder, "attention.desc")
    if os.path.exists(desc):
        return _from_descriptor_set(desc)
    raise RuntimeError("no usable stubs in " + folder + ("; " + "; ".join(errors) if errors else ""))


def load(pregenerated=None):
    """attnd's messages: generated now when a generator is here, else from `pregenerated`."""
    errors = []
    folder = tempfile.mkdtemp(prefix="attnd-peer-stubs-")
    try:
        tool = generate(folder)
        ns = load_from(folder)  # imported: the files are not needed after this
        ns.source = f"proto/ (generated now by {tool})"
        return ns
    except Exception as e:  # noqa: BLE001
        errors.append(f"generating: {e}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    candidates = [pregenerated, os.environ.get("ATTND_PEER_STUBS"),
                  os.path.join(REPO, ".device", "serving", "stubs")]
    for folder in candidates:
        if folder and os.path.isdir(folder):
            try:
                return load_from(folder)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{folder}: {e}")
    raise RuntimeError("cannot load attnd's messages: " + "; ".join(errors))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to generate the stubs into")
    args = parser.parse_args()
    tool = generate(args.out)
    print(f"attnd_stubs: {args.out} generated by {tool}", file=sys.stderr)


if __name__ == "__main__":
    main()
