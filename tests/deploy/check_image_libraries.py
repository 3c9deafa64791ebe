"""The Dockerfile's runtime stage installs the Debian packages of every shared library attnd and
attnctl link, and no package none of them needs. The binaries are this build's; the CUDA
toolkit's libraries (under /usr/local/cuda on a build machine, from NVIDIA's packages in the
image) are left to the image build's own `ldd`; the package
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
    libraries = {}  # real path -> soname
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (\S+)", line)
        if not match:
            continue
        if match.group(2) == "not":
            sys.exit(f"{binary}: {match.group(1)} not found")
        real = os.path.realpath(match.group(2))
        if real.startswith("/usr/local/cuda"):
            continue  # the CUDA toolkit's (cuBLAS, cuDNN): NVIDIA's packages in the image
        libraries[real] = match.group(1)
    # One dpkg -S for all (each call reads dpkg's whole database); merged /usr: try /lib too.
    candidates = list(libraries) + [p.replace("/usr/lib/", "/lib/", 1) for p in libraries]
    out = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True).stdout
    owner = {}
    for line in out.splitlines():
        packages, path = line.split(": ", 1)
        owner[path] = packages.split(",")[0].split(":")[0].strip()
    found = {}
    for path, soname in libraries.items():
        package = owner.get(path) or owner.get(path.replace("/usr/lib/", "/lib/", 1))
        if package is None:
            sys.exit(f"{binary}: {path} belongs to no Debian package")
        found.setdefault(package, []).append(soname)
    return found


def installed_dependencies():
    """{package: {packages it depends on}} over the installed packages (Depends, Pre-Depends;
    of alternatives, the installed ones; virtual packages through Provides)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Pre-Depends}, ${Depends}\t${Provides}\n"],
                         check=True, capture_output=True, text=True).stdout
    depends, provided_by = {}, {}
    for line in out.splitlines():
        package, deps, provides = (line.split("\t") + ["", ""])[:3]
        depends[package] = [[re.split(r"[\s(:]", alt.strip())[0] for alt in dep.split("|")]
                            for dep in deps.split(",") if dep.strip()]
        for virtual in provides.split(","):
            if virtual.strip():
                provided_by.setdefault(re.split(r"[\s(:]", virtual.strip())[0], []).append(package)
    graph = {}
    for package, deps in depends.items():
        graph[package] = set()
        for alternatives in deps:
            for name in alternatives:
                graph[package].update(n for n in [name] + provided_by.get(name, []) if n in depends)
    return graph


def dependency_closure(packages, graph):
    closure, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        if package not in closure:
            closure.add(package)
            todo.extend(graph.get(package, ()))
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

    graph = installed_dependencies()
    missing = [p for p in listed if p not in graph]
    if missing:
        sys.exit(f"runtime packages not installed here, so not checkable: {missing}")
    base = dependency_closure(["apt"], graph) | required_packages()
    covered = dependency_closure(listed, graph)
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
