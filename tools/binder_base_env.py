#!/usr/bin/env python3
"""Print mybinder.org's base environment as a pip requirements list.

repo2docker builds every Python image from a conda lock file that it ships
(buildpacks/conda/environment.py-X.Y-linux-64.lock, an @EXPLICIT list of
conda-forge package URLs), and only then runs `pip install -r
binder/requirements.txt` on top of it. tools/binder-check.sh replays that with
pip in a venv; this script turns the lock into `name==version` lines that pip
can install (with --no-deps, as conda installed them: already resolved).

Which conda packages are kept:
  * A conda package is a Python distribution when its build string starts with
    "py" (py311h1ddb823_1 for compiled ones, pyhd8ed1ab_0 and friends for
    noarch ones). Everything else is skipped and reported on stderr:
    - C libraries and runtimes: _libgcc_mutex, _openmp_mutex, libgcc, libstdcxx,
      libzlib, libffi, openssl, ncurses, readline, tk, icu, krb5, zeromq, zstd,
      bzip2, yaml, ca-certificates, tzdata (the system zone database) ...;
    - python itself and python_abi (the venv's interpreter stands for them);
    - nodejs (not on PyPI; the notebooks never need it);
    - conda metapackages that only pull in Python packages already listed:
      see METAPACKAGES below.
  * Conda names that differ from the PyPI name are renamed (CONDA_TO_PYPI).

Usage:
  binder_base_env.py [--lock FILE | --dockerfile FILE] [--python 3.11]
                     [--platform linux-64] [--print-lock] [-v]

--dockerfile picks the lock file that the rendered Dockerfile copies to
/tmp/env/environment.lock (needs repo2docker importable: run it with the
python of the venv where repo2docker is installed). Without --lock or
--dockerfile, the default lock for --python and --platform is used.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {
    "brotli-python": "brotli",
    "cached_property": "cached-property",
    "jupyterhub-base": "jupyterhub",
    "nbconvert-core": "nbconvert",
    "python-fastjsonschema": "fastjsonschema",
}

# Documented skip list: conda packages whose build string does not start with
# "py" are skipped by rule; these are named here so that the reason printed is
# a real one. A package skipped by the rule but not named here is reported as
# "not a Python distribution (build string ...)".
METAPACKAGES = {
    "bleach-with-css": "metapackage: bleach + tinycss2, both listed",
    "cached-property": "metapackage: cached_property, listed",
    "jsonschema-with-format-nongpl": "metapackage: jsonschema + its format extras, all listed",
    "jupyterhub-singleuser": "metapackage: jupyterhub-base (-> jupyterhub) + jupyterlab, listed",
    "typing-extensions": "metapackage: typing_extensions, listed",
}
CONDA_ONLY = {
    "python": "the interpreter: the venv's python3 stands for it",
    "python_abi": "conda's ABI marker",
    "nodejs": "not a Python package (JupyterLab only needs it to build extensions)",
    "tzdata": "the system time zone database, not PyPI's tzdata",
    "ca-certificates": "system certificates",
}

LOCK_LINE = re.compile(
    r"/(?P<subdir>[^/]+)/(?P<name>[^/]+?)-(?P<version>[^-/]+)-(?P<build>[^-/]+?)"
    r"\.(?:conda|tar\.bz2)(?:#.*)?$"
)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str):
    """Yield (name, version, build) for every package URL in an @EXPLICIT lock."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "@")):
            continue
        m = LOCK_LINE.search(line)
        if not m:
            raise SystemExit(f"binder_base_env: cannot parse lock line: {line}")
        yield m.group("name"), m.group("version"), m.group("build")


def classify(name: str, build: str) -> tuple[str | None, str]:
    """Return (pypi_name, "") to keep a package, or (None, reason) to skip it."""
    if name in METAPACKAGES:
        return None, METAPACKAGES[name]
    if name in CONDA_ONLY:
        return None, CONDA_ONLY[name]
    if not build.startswith("py"):
        return None, f"not a Python distribution (build string {build})"
    return CONDA_TO_PYPI.get(name, name), ""


def repo2docker_conda_dir() -> Path:
    try:
        import repo2docker.buildpacks.conda as conda_bp
    except ImportError as e:  # pragma: no cover - message for humans
        raise SystemExit(
            "binder_base_env: repo2docker is not importable; run this with the python of "
            f"the venv where jupyter-repo2docker is installed ({e})"
        ) from e
    return Path(conda_bp.__file__).parent


def lock_from_dockerfile(dockerfile: Path) -> Path:
    """The lock file that the rendered Dockerfile copies to /tmp/env/environment.lock."""
    from repo2docker.buildpacks.base import BuildPack

    copy = [
        line
        for line in dockerfile.read_text().splitlines()
        if line.startswith("COPY") and line.rstrip().endswith(" /tmp/env/environment.lock")
    ]
    if len(copy) != 1:
        raise SystemExit(
            f"binder_base_env: expected one COPY ... /tmp/env/environment.lock in {dockerfile}, "
            f"found {len(copy)}"
        )
    for lock in sorted(repo2docker_conda_dir().glob("*.lock")):
        context_name, _ = BuildPack.generate_build_context_filename(str(lock))
        if f" {context_name} " in copy[0]:
            return lock
    raise SystemExit(
        f"binder_base_env: no lock file of repo2docker matches the Dockerfile's line: {copy[0]}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--lock", type=Path, help="a conda @EXPLICIT lock file")
    src.add_argument("--dockerfile", type=Path, help="use the lock this Dockerfile copies")
    ap.add_argument("--python", default="3.11")
    ap.add_argument("--platform", default="linux-64")
    ap.add_argument("--print-lock", action="store_true", help="print the lock file's path and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="list skipped packages")
    args = ap.parse_args(argv)

    if args.lock:
        lock = args.lock
    elif args.dockerfile:
        lock = lock_from_dockerfile(args.dockerfile)
    else:
        lock = repo2docker_conda_dir() / f"environment.py-{args.python}-{args.platform}.lock"
    if not lock.is_file():
        raise SystemExit(f"binder_base_env: no lock file at {lock}")
    if args.print_lock:
        print(lock)
        return 0

    kept: dict[str, str] = {}
    skipped: list[tuple[str, str, str]] = []
    for name, version, build in parse_lock(lock.read_text()):
        pypi, reason = classify(name, build)
        if pypi is None:
            skipped.append((name, version, reason))
            continue
        key = normalize(pypi)
        if key in kept and kept[key] != f"{pypi}=={version}":
            raise SystemExit(f"binder_base_env: {pypi} twice with different versions in {lock}")
        kept[key] = f"{pypi}=={version}"

    print(f"# mybinder.org base environment, from {lock.name}")
    print(f"# {len(kept)} Python packages; {len(skipped)} conda-only packages skipped")
    for req in kept.values():
        print(req)
    if args.verbose:
        for name, version, reason in skipped:
            print(f"binder_base_env: skip {name} {version}: {reason}", file=sys.stderr)
    print(
        f"binder_base_env: {lock.name}: {len(kept)} Python packages kept, "
        f"{len(skipped)} conda-only skipped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
