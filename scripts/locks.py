"""The lock files: every package an install gets, pinned, with its hashes.

    python scripts/locks.py compile [--upgrade]    (`make lock`; uv, needs the package index)
    python scripts/locks.py check                  (`make check-locks`, CI; offline, < 1 s)

`requirements/main.lock` is what the image runs on (`[project].dependencies`),
`requirements/dev.lock` what `make` installs (those, the `dev` extra, and the same pins). Both
hold the build backend (`[build-system].requires`) too, so the project itself installs with
`--no-deps --no-build-isolation`: nothing unpinned is fetched. The locks are universal
(markers decide what applies) for Python 3.11 and up; `compile` keeps existing pins unless
told `--upgrade`.

`check` says where pyproject.toml and the locks disagree, for the interpreter it runs on
(whose installed distributions, installed from dev.lock, give each package's own
requirements): a package required but not locked, locked at a version its dependents
exclude, or locked while nothing requires it; an entry without an exact pin or a hash; a
runtime pin that dev.lock does not share.
"""

import argparse
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
MAIN_LOCK = ROOT / "requirements" / "main.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
PYTHON_FLOOR = "3.11"
BUILD_VIA = "    # via pyproject.toml (build-system.requires)\n"


@dataclass
class Entry:
    name: str
    version: str
    marker: object | None
    hashes: list[str] = field(default_factory=list)


def roots(pyproject: dict) -> tuple[list[str], list[str]]:
    """(main, dev) requirement strings: what each lock must hold, with what they need."""
    build = pyproject["build-system"]["requires"]
    main = [*pyproject["project"]["dependencies"], *build]
    return main, [*main, *pyproject["project"]["optional-dependencies"]["dev"]]


def parse_lock(text: str) -> tuple[list[Entry], list[str]]:
    """The lock's entries (continuation lines joined, comments dropped) and its problems."""
    entries, problems, logical = [], [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        logical += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        spec, *options = logical.split(" --")
        logical = ""
        hashes = [o.strip()[len("hash=") :] for o in options if o.strip().startswith("hash=")]
        try:
            req = Requirement(spec.strip())
        except ValueError as exc:
            problems.append(f"unreadable entry {spec.strip()!r}: {exc}")
            continue
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) != 1 or len(req.specifier) != 1 or "*" in pins[0].version:
            problems.append(f"{req.name} is not pinned to one version ({req.specifier or 'any'})")
            continue
        if not hashes or not all(h.startswith("sha256:") for h in hashes):
            problems.append(f"{req.name}=={pins[0].version} has no sha256 hash")
        entries.append(Entry(canonicalize_name(req.name), pins[0].version, req.marker, hashes))
    return entries, problems


def _applies(marker, env: dict, extras: frozenset[str] = frozenset()) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**env, "extra": extra}) for extra in extras | {""})


def check_lock(
    label: str, requirements: list[str], text: str, env: dict, installed=metadata.distribution
) -> tuple[dict[str, Entry], list[str]]:
    entries, problems = parse_lock(text)
    problems = [f"{label}: {p}" for p in problems]
    locked: dict[str, Entry] = {}
    for entry in entries:
        if _applies(entry.marker, env):
            if entry.name in locked:
                problems.append(f"{label}: {entry.name} is locked twice for this environment")
            locked[entry.name] = entry
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(Requirement(r), "pyproject.toml") for r in requirements]
    queue = [(req, by) for req, by in queue if _applies(req.marker, env)]
    while queue:
        req, wanted_by = queue.pop()
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        entry = locked.get(name)
        if entry is None:
            problems.append(f"{label}: {req} (required by {wanted_by}) is not locked")
            continue
        if not req.specifier.contains(entry.version, prereleases=True):
            problems.append(
                f"{label}: {name}=={entry.version} is locked, {wanted_by} requires {req}"
            )
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = installed(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{label}: {name} is not installed here (run make to install)")
            continue
        if Version(dist.version) != Version(entry.version):
            problems.append(
                f"{label}: {name} {dist.version} is installed, the lock says {entry.version}"
                " (run make to reinstall)"
            )
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if _applies(sub.marker, env, extras):
                queue.append((sub, f"{name}{sorted(extras) if extras else ''}"))
    required = {name for name, _ in seen}
    for name in sorted(set(locked) - required):
        problems.append(f"{label}: {name} is locked but nothing requires it")
    return locked, problems


def check(
    pyproject: Path = PYPROJECT,
    main_lock: Path = MAIN_LOCK,
    dev_lock: Path = DEV_LOCK,
    env: dict | None = None,
    installed=metadata.distribution,
) -> list[str]:
    """Every way the locks and pyproject.toml disagree here; empty when they agree."""
    env = env or default_environment()
    main_roots, dev_roots = roots(tomllib.loads(pyproject.read_text()))
    main, problems = check_lock(main_lock.name, main_roots, main_lock.read_text(), env, installed)
    dev, dev_problems = check_lock(dev_lock.name, dev_roots, dev_lock.read_text(), env, installed)
    problems += dev_problems
    for name, entry in sorted(main.items()):
        other = dev.get(name)
        if other and (other.version, sorted(other.hashes)) != (entry.version, sorted(entry.hashes)):
            problems.append(
                f"{dev_lock.name} has {name}=={other.version}, {main_lock.name} has"
                f" {name}=={entry.version} (or other hashes)"
            )
    return problems


def compile_locks(upgrade: bool) -> None:
    """Both locks from pyproject.toml with uv; dev.lock is held to main.lock's pins."""
    build = "\n".join(tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]) + "\n"
    uv = Path(sys.executable).parent / "uv"
    common = [str(uv), "pip", "compile", "pyproject.toml", "-", "--universal"]
    common += ["--python-version", PYTHON_FLOOR, "--generate-hashes", "--quiet"]
    common += ["--custom-compile-command", "make lock", *(["--upgrade"] if upgrade else [])]
    for lock, extra in ((MAIN_LOCK, []), (DEV_LOCK, ["--extra", "dev", "-c", str(MAIN_LOCK)])):
        out = lock.relative_to(ROOT)
        command = [*common, *extra, "-o", str(out)]
        subprocess.run(command, cwd=ROOT, input=build, text=True, check=True)
        _annotate_build_requirements(lock, build.split())


def _annotate_build_requirements(lock: Path, build: list[str]) -> None:
    # uv names no source for what it read from stdin: say where the build backend comes from.
    names = {canonicalize_name(Requirement(r).name) for r in build}
    out, pending = [], False
    for line in lock.read_text().splitlines(keepends=True):
        if pending and not line.startswith("    --hash"):
            if not line.startswith("    # via"):
                out.append(BUILD_VIA)
            pending = False
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line):
            pending = canonicalize_name(match.group(1)) in names
        out.append(line)
    if pending:
        out.append(BUILD_VIA)
    lock.write_text("".join(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="say where pyproject.toml and the locks disagree")
    compile_parser = sub.add_parser("compile", help="write the locks from pyproject.toml")
    compile_parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    args = parser.parse_args()
    if args.command == "compile":
        compile_locks(args.upgrade)
        return 0
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("The locks disagree with pyproject.toml: run `make lock`.", file=sys.stderr)
        return 1
    print(f"{MAIN_LOCK.name} and {DEV_LOCK.name} agree with pyproject.toml.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
