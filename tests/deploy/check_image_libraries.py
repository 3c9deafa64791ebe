"""The Dockerfile's runtime stage installs the Debian packages of every shared library attnd and
attnctl link, and no package none of them needs. The binaries are this build's (CPU-only; the
CUDA libraries, from NVIDIA's packages, are checked by the image build's own `ldd`); the package
names are Debian 12's, as on this machine, which is what the image's base is.

A library counts as covered when its package is in the runtime stage's `apt-get install`, is
pulled in by one of those packages, or comes with the base image (Priority: required, and apt
with what it depends on, as in debian:12-slim).

  check_image_libraries.py --dockerfile FILE --binary BIN [--binary BIN ...]
"""

import argparse
import os
import re
import subprocess
import sys


def runtime_packages(dockerfile):
    """Package names of the runtime stage's `apt-get install` (those with build args are NVIDIA's)."""
    with open(dockerfile) as f:
        text = f.read().replace("\\\n", " ")
    stage = re.split(r"^FROM\s+\S+\s+AS\s+runtime\s*$", text, flags=re.M | re.I)
    if len(stage) != 2:
        sys.exit("no `FROM ... AS runtime` stage in the Dockerfile")
    stage = re.split(r"^FROM\s", stage[1], flags=re.M)[0]
    packages = []
    for match in re.finditer(r"apt-get install ([^&;]*)", stage):
        for word in match.group(1).split():
            word = word.strip('"')
            if not word.startswith("-") and "$" not in word:
                packages.append(word)
    if not packages:
        sys.exit("the runtime stage installs no Debian packages")
    return packages


def library_packages(binary):
    """{package: [libraries]} of the binary's resolved shared libraries."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (\S+)", line)
        if not match:
            continue
        if match.group(2) == "not":
            sys.exit(f"{binary}: {match.group(1)} not found")
        path = os.path.realpath(match.group(2))
        package = None
        for candidate in (path, path.replace("/usr/lib/", "/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                package = r.stdout.split(":")[0]
                break
        if package is None:
            sys.exit(f"{binary}: {path} belongs to no Debian package")
        found.setdefault(package, []).append(match.group(1))
    return found


def dependency_closure(packages):
    if not packages:
        return set()
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        check=True, capture_output=True, text=True).stdout
    closure = set()
    for line in out.splitlines():
        name = line.strip().split(":")[-1].strip().strip("<>")
        if line and not line.startswith(" "):
            closure.add(line.strip().split(":")[0])
        elif name:
            closure.add(name.split(":")[0])
    return closure


def required_packages():
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Priority}\n"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.endswith(" required")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dockerfile", required=True)
    parser.add_argument("--binary", action="append", required=True)
    args = parser.parse_args()

    listed = runtime_packages(args.dockerfile)
    print(f"runtime stage installs (Debian): {' '.join(listed)}")
    needed = {}
    for binary in args.binary:
        for package, libs in library_packages(binary).items():
            needed.setdefault(package, set()).update(libs)

    base = dependency_closure(["apt"]) | required_packages()
    covered = dependency_closure(listed)
    failures, passed = [], 0
    for package, libs in sorted(needed.items()):
        if package in covered or package in base:
            passed += 1
            where = "listed" if package in listed else ("a dependency" if package in covered else "the base image")
            names = sorted(libs)
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            print(f"ok   {package} ({shown}): {where}")
        else:
            failures.append(f"{package} ({', '.join(sorted(libs))}) is not installed by the runtime stage")
    for package in listed:
        if package in needed:
            passed += 1
        else:
            failures.append(f"{package} is installed by the runtime stage but no library of attnd or "
                            "attnctl comes from it")
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"check_image_libraries: {passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
