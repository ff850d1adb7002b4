"""The image's steps without Docker: the Dockerfile's instructions, run in a plain virtualenv.

    python scripts/check_image.py            (CI; about a minute)

1. The build stage as written: its ENV, WORKDIR, COPY and RUN instructions in a temporary
   directory (/opt/venv and /src under it, the machine's Python 3.11 for the base image's),
   so requirements/main.lock (hashes checked) and PushPilot alone make the virtualenv. What
   it installed of PushPilot must be every module of config/ and apps/, and no tests
   package or conftest.
2. The runtime stage: from a directory holding only gunicorn.conf.py (the image's /app), with
   the image's environment and nothing inherited, the Dockerfile's collectstatic step, then
   the compose services' commands — migrate, web (the image's CMD), worker, dispatcher.
   Passes when `/readyz` answers 200, the collected Swagger UI is served, and the image's
   HEALTHCHECK and the compose healthchecks of the worker and dispatcher succeed.

On PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set (CI), else on SQLite and the
file-system broker in the temporary directory.
"""

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("worker", "dispatcher")  # started beside web (the image's CMD)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's


class Failed(Exception):
    pass


def wheel_problems(names: list[str], sources: Path) -> list[str]:
    """What is wrong with PushPilot's installed files `names`, built from `sources`."""
    problems = [
        f"ships {name}"
        for name in names
        if "tests" in Path(name).parts[:-1] or Path(name).name == "conftest.py"
    ]
    expected = {
        path.relative_to(sources).as_posix()
        for top in ("config", "apps")
        for path in (sources / top).rglob("*.py")
        if "tests" not in path.relative_to(sources).parts
        and path.name != "conftest.py"
        and "__pycache__" not in path.parts
    }
    problems += [f"lacks {name}" for name in sorted(expected - set(names))]
    return problems


def stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages by name: (instruction, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction == "FROM":
            current = found.setdefault(arguments.split(" AS ")[-1].strip(), [])
        current.append((instruction, arguments.strip()))
    return found


def _env_assignments(arguments: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(arguments))


class Here:
    """The image's absolute paths, under a temporary directory."""

    def __init__(self, work: Path) -> None:
        self.work = work

    def path(self, path: str) -> Path:
        return self.work / path.lstrip("/")

    def text(self, text: str) -> str:
        for path in ("/opt/venv", "/src", "/app"):
            text = re.sub(rf"(?<![\w.-]){path}(?=/|\b)", str(self.path(path)), text)
        return text


def build(here: Here) -> Path:
    """Run the build stage; the virtualenv it made."""
    base = Path(sys._base_executable).parent  # the base image's python
    env = {"PATH": f"{base}:{DEFAULT_PATH}", "HOME": str(here.work)}
    workdir = here.work
    for instruction, arguments in stages()["build"]:
        if instruction == "ENV":
            for key, value in _env_assignments(arguments).items():
                env[key] = here.text(value.replace("$PATH", env.get("PATH", "")))
        elif instruction == "WORKDIR":
            workdir = here.path(arguments)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, target = shlex.split(arguments)
            for source in sources:
                _copy(ROOT / source, workdir, target, many=len(sources) > 1)
        elif instruction == "RUN":
            run(["sh", "-c", here.text(arguments)], workdir, env)
    venv = here.path("/opt/venv")
    records = list((venv / "lib").glob("python3.*/site-packages/pushpilot-*.dist-info/RECORD"))
    if len(records) != 1:
        raise Failed(f"the build stage installed PushPilot {len(records)} times in {venv}")
    (record,) = records
    names = [line.split(",")[0] for line in record.read_text().splitlines()]
    names = [name for name in names if name.startswith(("apps/", "config/"))]
    names = [name for name in names if "__pycache__" not in name]
    problems = wheel_problems(names, here.path("/src"))
    if problems:
        raise Failed(f"{record.parent.name}: " + "; ".join(problems))
    print(f"-> build stage: main.lock and PushPilot ({len(names)} files, no tests)", flush=True)
    return venv


def _copy(source: Path, workdir: Path, target: str, many: bool) -> None:
    """COPY's rules: a directory's contents go to `target`; a file goes into it when it ends
    in / or there are several sources, else becomes it."""
    destination = workdir / target
    if source.is_file() and (target.endswith("/") or many):
        destination = destination / source.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(source, destination, ignore=ignore, dirs_exist_ok=True)
    else:
        shutil.copy2(source, destination)


def runtime_stage(here: Here) -> dict:
    """Lay out the runtime stage (WORKDIR, COPY); its ENV, collectstatic, HEALTHCHECK, CMD."""
    found: dict = {"env": {}}
    for instruction, arguments in stages()["runtime"]:
        if instruction == "WORKDIR":
            found["workdir"] = here.path(arguments)
            found["workdir"].mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and not arguments.startswith("--from"):
            *sources, target = shlex.split(arguments)
            for source in sources:
                _copy(ROOT / source, found["workdir"], target, many=len(sources) > 1)
        elif instruction == "ENV":
            found["env"] |= {
                key: here.text(value.replace("$PATH", DEFAULT_PATH))
                for key, value in _env_assignments(arguments).items()
            }
        elif instruction == "RUN" and "collectstatic" in arguments:
            found["collectstatic"] = shlex.split(arguments.split("&&", 1)[0])
        elif instruction == "HEALTHCHECK":
            found["healthcheck"] = json.loads(arguments.split(" CMD ", 1)[1])
        elif instruction == "CMD":
            found["cmd"] = json.loads(arguments)
    return found


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_env(image: dict, app: Path, port: int) -> dict:
    env = image["env"] | {
        "HOME": str(app),
        "HOSTNAME": socket.gethostname(),
        "PORT": str(port),
        # What compose gives every app service (docker-compose.yml's x-app environment).
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
    }
    for name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{Path(env['PUSHPILOT_VAR_DIR']) / 'pushpilot.sqlite3'}"
    return env


def run(command: list, cwd: Path | None = None, env: dict | None = None) -> str:
    """Run `command` quietly; its output is in the error when it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        output = (done.stdout + done.stderr)[-3000:]
        raise Failed(f"{shlex.join(map(str, command))} exited with {done.returncode}:\n{output}")
    return done.stdout


def succeeds(command: list, cwd: Path, env: dict) -> bool:
    try:
        run(command, cwd, env)
    except Failed:
        return False
    return True


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http to itself)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")


def run_processes(here: Here) -> None:
    image, services = runtime_stage(here), compose()
    app, work = image["workdir"], here.work
    env = image_env(image, app, free_port())
    for folder in ("broker", "broker-processed"):  # the file-system broker, without REDIS_URL
        (Path(env["PUSHPILOT_VAR_DIR"]) / folder).mkdir(parents=True, exist_ok=True)

    step = image["collectstatic"]
    assignments = [item for item in step if re.match(r"^[A-Z_]+=", item)]
    build_env = env | dict(item.split("=", 1) for item in assignments)
    run(step[len(assignments) :], app, build_env)  # the Dockerfile's collectstatic step
    run(services["migrate"]["command"], app, env)
    print("-> collectstatic (Dockerfile), migrate (docker-compose.yml)", flush=True)

    started = {}
    try:
        commands = {"web": image["cmd"]} | {name: services[name]["command"] for name in SERVICES}
        for name, command in commands.items():
            process_env = env | _service_env(services, name, here)
            log = (work / f"{name}.log").open("w")
            started[name] = subprocess.Popen(
                command, cwd=app, env=process_env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        base = f"http://127.0.0.1:{env['PORT']}"
        wait_for("/readyz to answer 200", lambda: get(f"{base}/readyz")[0] == 200, timeout=90)
        _check_served(base)
        run(image["healthcheck"], app, env)
        run(services["dispatcher"]["healthcheck"]["test"][1:], app, env)
        kind, ping = services["worker"]["healthcheck"]["test"]
        assert kind == "CMD-SHELL", kind
        ping = ["sh", "-c", ping.replace("$$", "$")]  # compose's escape for a literal $
        wait_for("the worker's healthcheck", lambda: succeeds(ping, app, env), timeout=60)
        for name, process in started.items():
            if process.poll() is not None:
                raise Failed(f"{name} exited with {process.returncode}")
        print("-> web, worker, dispatcher: /readyz 200, static files, healthchecks", flush=True)
    except Failed:
        for name in started:
            tail = (work / f"{name}.log").read_text()[-2000:]
            print(f"--- {name} (last lines) ---\n{tail}", file=sys.stderr, flush=True)
        raise
    finally:
        for process in started.values():
            _stop(process)


def _service_env(services: dict, name: str, here: Here) -> dict:
    """PROMETHEUS_MULTIPROC_DIR and METRICS_MERGE_DIRS as compose gives them."""
    service = services.get(name, {})
    values = {
        key: str(service.get("environment", {}).get(key, ""))
        for key in ("PROMETHEUS_MULTIPROC_DIR", "METRICS_MERGE_DIRS")
    }
    return {key: here.text(value) for key, value in values.items() if value}


def _check_served(base: str) -> None:
    status, page = get(f"{base}/api/docs")
    if status != 200:
        raise Failed(f"/api/docs answered {status}")
    assets = re.findall(rb'(/static/[^"\']+\.(?:css|js))', page)
    if not assets:
        raise Failed("/api/docs links no static asset")
    for asset in assets:
        status, _ = get(base + asset.decode())
        if status != 200:
            raise Failed(f"{asset.decode()} answered {status}: static files are not collected")
    status, _ = get(f"{base}/api/schema")
    if status != 200:
        raise Failed(f"/api/schema answered {status}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pushpilot-image-") as tmp:
        here = Here(Path(tmp))
        try:
            build(here)
            run_processes(here)
        except Failed as exc:
            print(f"IMAGE CHECK FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
