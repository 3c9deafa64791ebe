"""Installs this package into the running Python (the project's .venv) when its sources or the
proto changed since the last install; otherwise does nothing. Offline: the build tools come from
requirements-dev.txt (--no-build-isolation), the dependencies are already there (--no-deps).

    .venv/bin/python client/python/dev_install.py

Used by scripts/install-deps.sh and before the Python tests (tests/python/run_tests.sh), so the
tests always run against the installed package of the current tree, stubs generated from it.
"""

import hashlib
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto" / "attnd" / "v1" / "attention.proto"


def source_digest() -> str:
    files = sorted([HERE / "pyproject.toml", HERE / "setup.py", PROTO,
                    *(HERE / "attnd").rglob("*.py"), *(HERE / "attnd").rglob("py.typed")])
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(HERE.parent.parent)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def main() -> int:
    stamp = pathlib.Path(sys.prefix) / ".attnd-client-installed"
    digest = source_digest()
    if stamp.exists() and stamp.read_text() == digest:
        print("dev_install: attnd client up to date in", sys.prefix)
        return 0
    print("dev_install: installing the attnd client into", sys.prefix, flush=True)
    shutil.rmtree(HERE / "build", ignore_errors=True)  # pip builds in the tree: no stale modules
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "--no-build-isolation", "--no-deps",
                    "--force-reinstall", str(HERE)], check=True)
    stamp.write_text(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
