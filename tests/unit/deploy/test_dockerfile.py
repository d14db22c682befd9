"""The Dockerfile, .dockerignore and the image's health-check script, read and run offline.

No image is built here (no Docker engine on this machine): these tests hold the Dockerfile to
what the image must be — a pinned base, a non-root numeric user, the package's own console
script as the entry point, the lock installed by the Makefile's uv release, a health check
that really exists in the image — and run the health-check script against real HTTP servers,
since every service's health in docker-compose.yml rests on it.
"""

from __future__ import annotations

import fnmatch
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator

import pytest

from tests.unit.deploy import compose_files as cf

ROOT = cf.ROOT
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HEALTHCHECK = cf.COMPOSE_DIR / "healthcheck.py"
# python:3.11.<patch>-slim-<debian codename>: a patch release and a Debian release, never a
# moving tag such as 3.11-slim or latest
PINNED_BASE = re.compile(r"^python:(?P<minor>3\.\d+)\.\d+-slim-(bookworm|trixie)$")


@pytest.fixture(scope="module")
def instructions() -> list[cf.Instruction]:
    return cf.dockerfile()


def _from_image(instruction: cf.Instruction) -> tuple[str, str | None]:
    parts = instruction.args.split()
    alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
    return parts[0], alias


def test_the_line_parser_joins_continuations_and_skips_comments() -> None:
    """The parser the other tests rely on: a wrong join would hide an instruction."""
    parsed = cf.dockerfile(
        "# comment\nFROM a:1 AS build\nRUN one \\\n    # inside\n    two\n"
        'FROM b:2\nENTRYPOINT ["x"]\nHEALTHCHECK --interval=5s CMD ["y", "z"]\n'
    )
    assert [(i.keyword, i.args, i.stage) for i in parsed[:3]] == [
        ("FROM", "a:1 AS build", 0),
        ("RUN", "one two", 0),
        ("FROM", "b:2", 1),
    ]
    assert parsed[3].exec_form() == ["x"]
    assert parsed[4].exec_form() == ["y", "z"]
    assert cf.image_argv(parsed) == (["x"], [])


def test_multi_stage_on_one_pinned_slim_base(instructions: list[cf.Instruction]) -> None:
    """Build tools stay in the build stage; both stages use the same pinned Python, so the
    virtual environment copied across finds its interpreter at the same path."""
    bases = [_from_image(i) for i in instructions if i.keyword == "FROM"]
    assert len(bases) >= 2, "expected a build stage and a runtime stage"
    images = {image for image, _ in bases}
    assert len(images) == 1, f"stages on different bases: {images}"
    (image,) = images
    assert PINNED_BASE.match(image), f"base image {image} is not a pinned python:3.x.y-slim-…"
    assert "latest" not in image
    aliases = {alias for _, alias in bases}
    runtime_copies = [
        i for i in cf.final_stage(instructions) if i.keyword == "COPY" and "--from=" in i.args
    ]
    assert runtime_copies, "the runtime stage copies nothing from the build stage"
    for copy in runtime_copies:
        source = re.search(r"--from=(\S+)", copy.args)[1]  # type: ignore[index]
        assert source in aliases, f"COPY --from={source}: no such stage"


def test_base_python_matches_the_project_and_the_dags_folder(
    instructions: list[cf.Instruction],
) -> None:
    """AIRFLOW__CORE__DAGS_FOLDER in docker-compose.yml names the image's site-packages by
    Python version: a base image on another minor version would leave Airflow with no DAGs."""
    image, _ = _from_image(next(i for i in instructions if i.keyword == "FROM"))
    minor = PINNED_BASE.match(image)["minor"]  # type: ignore[index]
    assert PYPROJECT["project"]["requires-python"].startswith(f">={minor}")
    compose = cf.load_compose()
    folders = {
        cf.environment(s).get("AIRFLOW__CORE__DAGS_FOLDER")
        for s in compose["services"].values()
        if "AIRFLOW__CORE__DAGS_FOLDER" in cf.environment(s)
    }
    assert folders == {f"/app/.venv/lib/python{minor}/site-packages/pharmaflow/orchestrate/dags"}, (
        folders
    )
    assert (ROOT / "src" / "pharmaflow" / "orchestrate" / "dags" / "__init__.py").is_file()


def test_runs_as_a_fixed_non_root_uid_without_a_shell(instructions: list[cf.Instruction]) -> None:
    stage = cf.final_stage(instructions)
    users = [i.args for i in stage if i.keyword == "USER"]
    assert users, "the runtime stage has no USER: it would run as root"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user}: use a numeric UID[:GID]"
    uid = int(user.split(":")[0])
    assert uid >= 1000, f"USER {uid}: a system or root UID"
    runs = " ".join(i.args for i in stage if i.keyword == "RUN")
    created = re.search(r"useradd\b[^;&]*--uid (\d+)[^;&]*--shell (\S+)", runs)
    assert created, "the runtime stage does not create its user with a fixed --uid"
    assert int(created[1]) == uid
    assert created[2] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
    # nothing after USER switches back to root
    after = stage[[i.keyword for i in stage].index("USER") :]
    assert all(i.keyword != "USER" or i.args == user for i in after)


def test_entrypoint_is_the_packages_console_script(instructions: list[cf.Instruction]) -> None:
    """One image, several entry points: compose picks the subcommand (or `airflow`)."""
    entry, cmd = cf.image_argv(instructions)
    scripts = PYPROJECT["project"]["scripts"]
    assert entry == ["pharmaflow"]
    assert "pharmaflow" in scripts
    module, _, function = scripts["pharmaflow"].partition(":")
    imported = __import__(module, fromlist=[function])
    assert callable(getattr(imported, function))
    assert cmd[:1] == ["serve"], "the default command is the API (the HEALTHCHECK's target)"


def test_installs_the_lock_with_the_makefiles_uv(instructions: list[cf.Instruction]) -> None:
    """The image and `make env` resolve nothing: both install uv.lock as locked, with the
    same uv release; the extras named exist in pyproject.toml."""
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile, re.M)[1]  # type: ignore[index]
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions
        if i.keyword == "ARG" and "=" in i.args
    }
    assert args["UV_VERSION"] == pinned
    runs = [i.args for i in instructions if i.keyword == "RUN"]
    assert any('"uv==${UV_VERSION}"' in r for r in runs)
    syncs = [r for r in runs if "uv sync" in r]
    assert len(syncs) == 2, "one sync for the dependencies, one for the project"
    for sync in syncs:
        assert "uv sync --frozen --no-dev" in sync
        assert '--extra "$extra"' in sync and "${EXTRAS}" in sync
    assert any("--no-editable" in s for s in syncs), "an editable install needs /src at run time"
    extras = args["EXTRAS"].strip('"').split()
    assert "airflow" in extras, "Airflow runs from this image"
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])


def test_no_java_in_the_image(instructions: list[cf.Instruction]) -> None:
    """Only the `spark` extra needs a JRE, and the image does not install that extra."""
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN").lower()
    assert "openjdk" not in runs and "jre" not in runs


def test_healthcheck_runs_a_script_the_image_contains(instructions: list[cf.Instruction]) -> None:
    stage = cf.final_stage(instructions)
    checks = [i for i in stage if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = checks[0].exec_form()
    assert command, "HEALTHCHECK CMD in exec form (no shell in the check)"
    copies = [i.args.split() for i in stage if i.keyword == "COPY" and "--from=" not in i.args]
    installed = {parts[-1]: parts[-2] for parts in copies}
    target = f"/usr/local/bin/{command[0]}"
    assert target in installed, f"{command[0]} is not copied into the image"
    assert (ROOT / installed[target]) == HEALTHCHECK and HEALTHCHECK.is_file()
    runs = " ".join(i.args for i in stage if i.keyword == "RUN")
    assert f"chmod 0755 {target}" in runs


def test_data_dir_is_a_volume_and_the_ports_are_exposed(
    instructions: list[cf.Instruction],
) -> None:
    stage = cf.final_stage(instructions)
    env = " ".join(i.args for i in stage if i.keyword == "ENV")
    assert "PHARMAFLOW_DATA_DIR=/data" in env
    volumes = [i.exec_form() for i in stage if i.keyword == "VOLUME"]
    assert ["/data"] in volumes
    exposed = {int(p) for i in stage if i.keyword == "EXPOSE" for p in i.args.split()}
    # the ports the compose services listen on inside the image
    assert {8000, 8501, 8080, 9501, 9511} <= exposed


def test_no_secret_in_the_dockerfile(instructions: list[cf.Instruction]) -> None:
    """Keys and passwords arrive at run time; an ARG or ENV would stay in the image's history."""
    for instruction in instructions:
        if instruction.keyword in ("ARG", "ENV"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", instruction.args):
                assert not cf.SECRET_NAME.search(name), f"{instruction.keyword} {name}"
        if instruction.keyword in ("COPY", "ADD"):
            assert ".env" not in instruction.args.split()
    text = cf.DOCKERFILE.read_text()
    assert not re.search(r"\b[0-9a-f]{32,}\b", text), "a hex string that looks like a key"


# ---- .dockerignore ----------------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = cf.DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, for these patterns: the last matching pattern wins, `!` re-includes, a
    pattern matching a folder excludes what is inside it, `**/` matches any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        candidates = [body, body.removeprefix("**/")] if body.startswith("**/") else [body]
        for prefix in prefixes:
            names = [prefix] + ([prefix.split("/")[-1]] if body.startswith("**/") else [])
            if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
                result = not negate
                break
    return result


def test_dockerignore_keeps_data_secrets_and_environments_out() -> None:
    patterns = _ignore_patterns()
    for path in (".git/HEAD", ".venv/bin/python", "data/demo/vault/x", ".env", ".env.local",
                 ".tools/bin/uv", "src/pharmaflow/__pycache__/x.pyc",
                 ".pytest_cache/v", ".ruff_cache/x", "data/x.duckdb"):  # fmt: skip
        assert _ignored(path, patterns), f"{path} would be sent to the build"


def test_dockerignore_keeps_what_the_dockerfile_copies(
    instructions: list[cf.Instruction],
) -> None:
    patterns = _ignore_patterns()
    sources: list[str] = []
    for i in instructions:
        if i.keyword == "COPY" and "--from=" not in i.args:
            sources += [p for p in i.args.split()[:-1] if not p.startswith("--")]
    assert {"pyproject.toml", "uv.lock", "README.md", "src"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
    # and what the wheel needs from src/ is not dropped either
    for inner in ("src/pharmaflow/orchestrate/dbt_graph.json",
                  "src/pharmaflow/realtime/alerts/default_rules.yaml",
                  "src/pharmaflow/warehouse/dbt/dbt_project.yml"):  # fmt: skip
        assert (ROOT / inner).exists() and not _ignored(inner, patterns), inner


# ---- the compose images ---------------------------------------------------------------------


def test_every_compose_image_is_pinned() -> None:
    """A moving tag (`latest`, none, a bare major) changes the stack under a restart."""
    compose = cf.resolved()
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a release"


def test_pharmaflow_image_tag_is_the_package_version() -> None:
    services = cf.resolved()["services"]
    built = {s["image"] for s in services.values() if cf.runs_image(s)}
    assert built == {f"pharmaflow:{PYPROJECT['project']['version']}"}


def test_mlflow_server_matches_the_locked_client() -> None:
    """The tracking server and the client the package locks speak one REST API version."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    image = cf.resolved()["services"]["mlflow"]["image"]
    assert image == f"ghcr.io/mlflow/mlflow:v{versions['mlflow-skinny']}"


# ---- the health-check script, against real servers --------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    class Handler(_Handler):
        status = 200

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        env={**clean, "HEALTHCHECK_TIMEOUT_SECONDS": "3", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_passes_on_2xx_and_ignores_proxies(server: http.server.HTTPServer) -> None:
    url = f"http://127.0.0.1:{server.server_port}/health"
    # a proxy that does not exist: honouring it would fail the check
    done = _run(url, http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_healthcheck_fails_on_an_error_status(server: http.server.HTTPServer) -> None:
    server.RequestHandlerClass.status = 503  # type: ignore[attr-defined]
    done = _run(f"http://127.0.0.1:{server.server_port}/ready")
    assert done.returncode == 1
    assert "answered 503" in done.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    done = _run(f"http://127.0.0.1:{closed}/health")
    assert done.returncode == 1
    assert "did not answer" in done.stderr


def test_healthcheck_defaults_to_the_api_port(server: http.server.HTTPServer) -> None:
    """No argument: the image's default command, the API, on PHARMAFLOW_API_PORT."""
    assert _run(PHARMAFLOW_API_PORT=str(server.server_port)).returncode == 0
    assert _run("a", "b").returncode == 2
    assert _run("file:///etc/passwd").returncode == 1


def test_healthcheck_script_is_standard_library_only() -> None:
    """It runs in every image state, before and without the package."""
    imports = re.findall(r"^(?:from|import) (\w+)", HEALTHCHECK.read_text(), re.M)
    assert set(imports) <= set(sys.stdlib_module_names) | {"__future__"}, imports
    assert HEALTHCHECK.read_text().startswith("#!/usr/bin/env python3\n")
