"""docker-compose.yml: valid for Compose, every command real, every variable real, no secret.

No Docker engine runs here, so nothing is started. What can be proved without one is proved
against the real tools:

- Debian's docker-compose 1.29 (`make test` installs it) parses, interpolates and validates
  the file with `.env.example`; it refuses a missing required secret and the newer keys it
  cannot read, and the Compose Specification JSON schema it ships validates the file too.
- every service built from the image runs a command the package's real Typer CLI accepts
  (parsed with click's own `make_context`, so types, ranges and required options count, and
  the installed console script's `--help` shows each option); Airflow's commands parse with
  the installed Airflow's own argument parser; the health checks probe ports the services
  really listen on; URLs name services of this file.
- every `${VAR}` is in `.env.example` and every entry there is used; every PHARMAFLOW_*
  variable a service gets is a real setting (loaded with `Settings` to prove its value
  validates), every AIRFLOW__* one a real Airflow option.
- credentials appear only as `${VAR:?…}` references (placeholders in `.env.example`).
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import typer
import yaml
from typer.main import get_command

from pharmaflow.cli.main import app
from pharmaflow.config import Settings
from tests.unit.deploy import compose_files as cf

# The Compose Specification schema Debian's docker-compose validates with (offline).
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
PHARMAFLOW = Path(sys.executable).with_name("pharmaflow")
ENTRY_POINTS = {"pharmaflow", "airflow", "python"}
# Variables Compose itself reads from .env (the project name replaces a top-level `name:`).
COMPOSE_OWN = {"COMPOSE_PROJECT_NAME"}
DEFAULT_RULES = (
    cf.ROOT / "src" / "pharmaflow" / "realtime" / "alerts" / "default_rules.yaml"
).read_text()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cf.load_compose()


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    return cf.resolved()


@pytest.fixture(scope="module")
def instructions() -> list[cf.Instruction]:
    return cf.dockerfile()


def image_services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in resolved["services"].items() if cf.runs_image(s)}


def argvs(resolved: dict[str, Any], instructions: list[cf.Instruction]) -> dict[str, list[str]]:
    return {n: cf.service_argv(s, instructions) for n, s in image_services(resolved).items()}


# ---- (a) Compose validates the file ----------------------------------------------------------


@pytest.fixture(scope="module")
def docker_compose() -> Path:
    if not cf.DOCKER_COMPOSE.exists():
        pytest.fail(
            f"{cf.DOCKER_COMPOSE} is missing: run `make compose-check` (or `make test`, which "
            "installs Debian's docker-compose)"
        )
    return cf.DOCKER_COMPOSE


def test_docker_compose_validates_with_env_example(docker_compose: Path) -> None:
    done = cf.run_compose(docker_compose, cf.ENV_EXAMPLE, "config", "-q")
    assert done.returncode == 0, done.stderr
    assert "ERROR" not in done.stderr


def test_docker_compose_resolves_as_these_tests_do(
    docker_compose: Path, resolved: dict[str, Any]
) -> None:
    """The interpolation every other test judges is Compose's own: same services, volumes,
    images, commands and environments."""
    done = cf.run_compose(docker_compose, cf.ENV_EXAMPLE, "config")
    assert done.returncode == 0, done.stderr
    theirs = yaml.safe_load(done.stdout)
    assert set(theirs["services"]) == set(resolved["services"])
    assert set(theirs["volumes"]) == set(resolved["volumes"])
    for name, ours in resolved["services"].items():
        service = theirs["services"][name]
        assert service.get("image") == ours.get("image"), name
        assert cf.as_argv(service.get("command")) == cf.as_argv(ours.get("command")), name
        assert cf.as_argv(service.get("entrypoint")) == cf.as_argv(ours.get("entrypoint")), name
        assert cf.environment(service) == cf.environment(ours), name


def test_docker_compose_refuses_a_missing_secret(docker_compose: Path, tmp_path: Path) -> None:
    lines = cf.ENV_EXAMPLE.read_text().splitlines()
    env_file = tmp_path / "partial.env"
    env_file.write_text("\n".join(x for x in lines if not x.startswith("POSTGRES_PASSWORD=")))
    done = cf.run_compose(docker_compose, env_file, "config", "-q")
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in done.stderr


@pytest.mark.parametrize(
    "mutation",
    ["start_interval", "top_level_name"],
)
def test_docker_compose_rejects_what_it_cannot_read(
    docker_compose: Path, tmp_path: Path, compose: dict[str, Any], mutation: str
) -> None:
    """The validator is not a rubber stamp: the keys 1.29 does not know fail it, which is why
    the file has none of them."""
    broken = copy.deepcopy(compose)
    if mutation == "start_interval":
        broken["services"]["api"]["healthcheck"]["start_interval"] = "5s"
    else:
        broken = {"name": "pharmaflow", **broken}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    done = cf.run_compose(docker_compose, cf.ENV_EXAMPLE, "config", "-q", compose_file=path)
    assert done.returncode != 0
    assert ("start_interval" if mutation == "start_interval" else "name") in done.stderr


def test_compose_specification_schema(docker_compose: Path, resolved: dict[str, Any]) -> None:
    """The Compose Specification JSON schema (the copy docker-compose 1.29 ships, offline)."""
    schema = json.loads(COMPOSE_SPEC.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(resolved)]
    assert errors == []
    broken = copy.deepcopy(resolved)
    broken["services"]["api"]["depends_on"]["postgres"]["required"] = True
    assert any("required" in e.message for e in validator.iter_errors(broken))


def test_no_keys_newer_than_docker_compose_1_29(compose: dict[str, Any]) -> None:
    assert not {"name", "include"} & set(compose)
    for name, service in compose["services"].items():
        assert "develop" not in service, name
        assert "start_interval" not in (service.get("healthcheck") or {}), name
        for dep, spec in (service.get("depends_on") or {}).items():
            if isinstance(spec, dict):
                assert set(spec) <= {"condition"}, f"{name} -> {dep}: {spec}"


# ---- (b) every command exists ------------------------------------------------------------------


def test_every_image_service_runs_a_known_entry_point(
    resolved: dict[str, Any], instructions: list[cf.Instruction]
) -> None:
    commands = argvs(resolved, instructions)
    assert {"api", "dashboard", "ingest", "realtime", "airflow-scheduler"} <= set(commands)
    for name, argv in commands.items():
        assert argv and argv[0] in ENTRY_POINTS, f"{name}: {argv}"


def pharmaflow_commands() -> dict[str, list[str]]:
    resolved = cf.resolved()
    instructions = cf.dockerfile()
    return {n: a[1:] for n, a in argvs(resolved, instructions).items() if a[0] == "pharmaflow"}


def parse_with_the_cli(args: list[str]) -> tuple[list[str], typer.Context]:
    """Resolve `args` through the real CLI's command tree and build the leaf's context: the
    parser converts and checks every value (types, min/max, choices, required options) exactly
    as a run would, without invoking anything. Returns the command path and the leaf context.
    (Typer carries its own copy of click: its Context and exceptions are typer's.)"""
    command: Any = get_command(app)
    ctx = typer.Context(command, info_name="pharmaflow")
    rest, path = list(args), []
    while hasattr(command, "resolve_command"):  # a group
        assert rest and not rest[0].startswith("-"), (
            f"{args}: global options (the data dir) come from PHARMAFLOW_* here, not flags"
        )
        name, sub, rest = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        path.append(name)
        if hasattr(sub, "resolve_command"):
            ctx = typer.Context(sub, info_name=name, parent=ctx)
        command = sub
    return path, command.make_context(path[-1], rest, parent=ctx)


def test_the_cli_parser_refuses_bad_commands() -> None:
    """The check below can fail: unknown commands, options and out-of-range values, a
    missing required option."""
    for bad in (
        ["ingestt", "--source", "kafka://"],
        ["ingest", "--source", "kafka://", "--bogus"],
        ["ingest", "--source", "kafka://", "--workers", "0"],
        ["ingest", "--workers", "1"],
        ["serve", "--port", "70000"],
    ):
        with pytest.raises(typer.TyperException):
            parse_with_the_cli(bad)
    path, ctx = parse_with_the_cli(["broker", "start", "--partitions", "3"])
    assert path == ["broker", "start"] and ctx.params["partitions"] == 3


@pytest.mark.parametrize("service", sorted(pharmaflow_commands()))
def test_pharmaflow_command_is_accepted_by_the_cli(service: str) -> None:
    args = pharmaflow_commands()[service]
    _, ctx = parse_with_the_cli(args)
    used = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    known = {opt for p in ctx.command.params for opt in (*p.opts, *p.secondary_opts)}
    assert used <= known, f"{service}: {used - known}"
    if "--port" in used or "--metrics-port" in used:
        assert ctx.params.get("port") or ctx.params.get("metrics_port")


@pytest.mark.parametrize("service", sorted(pharmaflow_commands()))
def test_installed_console_script_shows_the_command(service: str, tmp_path: Path) -> None:
    """`pharmaflow <command> --help` from the console script the image's ENTRYPOINT runs."""
    args = pharmaflow_commands()[service]
    path, _ = parse_with_the_cli(args)
    done = subprocess.run(
        [str(PHARMAFLOW), *path, "--help"],
        env={**os.environ, "PHARMAFLOW_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Usage: pharmaflow {' '.join(path)}" in done.stdout
    for option in {a for a in args if a.startswith("--")}:
        assert option in done.stdout, f"{service}: {option} not in `{' '.join(path)} --help`"


_AIRFLOW_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, re, sys
    from airflow.cli.cli_parser import get_parser
    from airflow.configuration import conf, retrieve_configuration_description
    request = json.load(sys.stdin)
    parser = get_parser()
    errors = {}
    for argv in request["argvs"]:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                parser.parse_args(argv)
        except SystemExit as exc:
            errors[" ".join(argv)] = err.getvalue().strip().splitlines()[-1:] or [str(exc)]
            continue
        # argparse accepts abbreviations (--job-typ): each option must be spelled in full
        path = argv[: next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))]
        out = io.StringIO()
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(out):
            parser.parse_args([*path, "--help"])
        spelled = set(re.findall(r"--[a-z][a-z0-9-]*", out.getvalue()))
        wrong = sorted({a.split("=")[0] for a in argv if a.startswith("--")} - spelled)
        if wrong:
            errors[" ".join(argv)] = [f"not spelled as Airflow spells it: {wrong}"]
    description = retrieve_configuration_description(include_providers=True)
    unknown = [
        name for name in request["options"]
        if name.split("__")[2].lower() not in description.get(name.split("__")[1].lower(), {})
        .get("options", {})
    ]
    port = conf.getint("scheduler", "scheduler_health_check_server_port")
    print(json.dumps({"errors": errors, "unknown_options": unknown, "scheduler_port": port}))
    """
)


@pytest.fixture(scope="module")
def airflow_probe(
    resolved: dict[str, Any], instructions: list[cf.Instruction], tmp_path_factory
) -> dict[str, Any]:
    """One run of the installed Airflow (its own AIRFLOW_HOME): its argument parser on every
    Airflow command and health check of the file, its option catalogue on every AIRFLOW__*
    variable."""
    commands: list[list[str]] = []
    options: set[str] = set()
    for service in image_services(resolved).values():
        argv = cf.service_argv(service, instructions)
        if argv[0] == "airflow":
            commands.append(argv[1:])
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[:2] == ["CMD", "airflow"]:
            commands.append(test[2:])
        options |= {k for k in cf.environment(service) if k.startswith("AIRFLOW__")}
    assert commands and options
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    done = subprocess.run(
        [sys.executable, "-c", _AIRFLOW_PROBE],
        input=json.dumps({"argvs": commands, "options": sorted(options)}),
        env={**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["commands"] = commands
    return result


def test_airflow_commands_exist_in_the_installed_airflow(airflow_probe: dict[str, Any]) -> None:
    commands = {c[0] for c in airflow_probe["commands"]}
    assert {"db", "api-server", "scheduler", "dag-processor", "jobs"} <= commands
    assert airflow_probe["errors"] == {}


def test_airflow_variables_are_real_options(airflow_probe: dict[str, Any]) -> None:
    assert airflow_probe["unknown_options"] == []


def test_the_airflow_probe_can_fail(tmp_path: Path) -> None:
    """The same probe flags a command and an option Airflow does not have."""
    done = subprocess.run(
        [sys.executable, "-c", _AIRFLOW_PROBE],
        input=json.dumps({"argvs": [["scheduler", "--bogus"], ["jobs", "check", "--job-typ", "x"]],
                          "options": ["AIRFLOW__CORE__NO_SUCH_OPTION"]}),
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "scheduler --bogus" in result["errors"]
    assert "jobs check --job-typ x" in result["errors"]
    assert result["unknown_options"] == ["AIRFLOW__CORE__NO_SUCH_OPTION"]


def test_topic_init_calls_the_packages_topic_function(
    resolved: dict[str, Any], instructions: list[cf.Instruction]
) -> None:
    """The `python -c` of kafka-topics imports what exists and passes what it accepts (it is
    run for real against a broker in test_compose_services.py)."""
    argv = cf.service_argv(resolved["services"]["kafka-topics"], instructions)
    assert argv[:2] == ["python", "-c"]
    tree = ast.parse(argv[2])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = __import__(node.module, fromlist=[a.name for a in node.names])
            for alias in node.names:
                function = getattr(module, alias.name)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ensure_topics":
            keywords = {k.arg for k in node.keywords}
            assert keywords <= set(inspect.signature(function).parameters)
    bootstrap, partitions = argv[3:]
    assert bootstrap == "kafka:9092" and int(partitions) >= 1


def _listen_ports(name: str, argv: list[str], airflow_probe: dict[str, Any]) -> set[int]:
    ports = {int(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a in ("--port", "--metrics-port")}
    if argv[:2] == ["airflow", "scheduler"]:
        ports.add(airflow_probe["scheduler_port"])
    return ports


def test_health_checks_probe_what_the_service_serves(
    resolved: dict[str, Any], instructions: list[cf.Instruction], airflow_probe: dict[str, Any]
) -> None:
    checked = set()
    for name, service in image_services(resolved).items():
        check = service.get("healthcheck") or {}
        if check.get("disable"):
            continue
        test = check["test"]
        if test[1] != "pharmaflow-healthcheck":
            continue
        url = urlsplit(test[2])
        argv = cf.service_argv(service, instructions)
        assert url.hostname == "127.0.0.1", name
        assert url.port in _listen_ports(name, argv, airflow_probe), f"{name}: {test[2]}"
        checked.add(name)
    assert {"api", "dashboard", "ingest", "realtime", "airflow-scheduler"} <= checked


def test_long_running_services_have_health_checks_and_restart(resolved: dict[str, Any]) -> None:
    one_shot = {"kafka-topics", "airflow-init", "simulator"}
    for name, service in resolved["services"].items():
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
            assert not service["healthcheck"].get("disable"), name


def test_dependencies_wait_for_health(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    one_shot = {"kafka-topics", "airflow-init"}
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert spec == {"condition": want}, f"{name} -> {dep}: {spec}"
    assert "kafka-topics" in services["ingest"]["depends_on"]
    assert "postgres" in services["realtime"]["depends_on"]


def test_kafka_sources_reach_the_compose_broker(
    resolved: dict[str, Any], instructions: list[cf.Instruction]
) -> None:
    """`kafka://` sources resolve (pharmaflow's own URL parser) to the kafka service's
    internal advertised listener."""
    from pharmaflow.ingest.sources.kafka import parse_kafka_url

    advertised = cf.environment(resolved["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    listeners = advertised.split(",")
    internal = {x.removeprefix("PLAINTEXT://") for x in listeners if x.startswith("PLAINTEXT://")}
    assert internal == {"kafka:9092"}
    seen = 0
    for name, argv in argvs(resolved, instructions).items():
        env = cf.environment(resolved["services"][name])
        for flag in ("--source", "--to"):
            if flag in argv:
                url = argv[argv.index(flag) + 1]
                spec = parse_kafka_url(url, env.get("KAFKA_BOOTSTRAP_SERVERS"))
                assert spec.bootstrap in internal, f"{name}: {url} -> {spec.bootstrap}"
                seen += 1
    assert seen >= 3  # ingest, realtime, simulator
    groups = {
        parse_kafka_url(argvs(resolved, instructions)[n][3], "kafka:9092").group
        for n in ("ingest",)
    }
    assert groups == {"pharmaflow-ingest"}


def test_data_volume_is_the_images_data_dir(resolved: dict[str, Any]) -> None:
    """Every pharmaflow process (the Airflow tasks included) sees one data dir."""
    for name in ("ingest", "realtime", "api", "dashboard", "airflow-scheduler"):
        service = resolved["services"][name]
        assert "pharmaflow-data:/data" in service["volumes"], name
        assert cf.environment(service)["PHARMAFLOW_DATA_DIR"] == "/data", name


# ---- (c) every variable is real and listed ---------------------------------------------------


def settings_env_names() -> set[str]:
    """The environment names Settings reads: PHARMAFLOW_<FIELD>, or a field's alias."""
    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names.add(alias if isinstance(alias, str) else f"PHARMAFLOW_{field.upper()}")
    return names


def known_pharmaflow_names() -> set[str]:
    """PHARMAFLOW_* names the package reads besides Settings: the CLI's own envvars, and the
    default alert rules' route variables."""
    names = {
        env
        for param in get_command(app).params
        for env in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    names |= set(re.findall(r"\$\{([A-Z0-9_]+)\}", DEFAULT_RULES))
    return names


def test_every_reference_has_a_default_or_is_required(compose: dict[str, Any]) -> None:
    """A variable missing from .env either has a stated default or stops Compose with a
    message; none silently becomes an empty string."""
    for match in cf.references(compose):
        assert match["op"] in (":-", ":?"), f"${{{match['name']}{match['op'] or ''}…}}"
        if match["op"] == ":?":
            assert match["arg"].strip(), f"{match['name']}: :? without a message"
    for text in cf.strings(compose):
        bare = cf.BARE_REFERENCE.findall(text.replace("$$", ""))
        assert not bare, f"bare ${bare} in {text!r}: use ${{VAR:-…}} or ${{VAR:?…}}"


def test_every_variable_is_in_env_example_and_every_entry_used(compose: dict[str, Any]) -> None:
    referenced = {m["name"] for m in cf.references(compose)}
    listed = set(cf.env_example())
    assert referenced - listed == set(), "referenced but not in .env.example"
    assert listed - referenced - COMPOSE_OWN == set(), "in .env.example but never read"


def test_every_required_variable_stops_our_interpolation_too(compose: dict[str, Any]) -> None:
    """Each `:?` variable, removed from .env.example, makes interpolation fail (the same rule
    docker-compose applies above for POSTGRES_PASSWORD)."""
    required = {m["name"] for m in cf.references(compose) if m["op"] == ":?"}
    assert {"PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_VAULT_KEY", "POSTGRES_PASSWORD"} <= required
    for name in sorted(required):
        env = {k: v for k, v in cf.env_example().items() if k != name}
        with pytest.raises(cf.MissingVariable, match=name):
            cf.interpolate(compose, env)


def test_pharmaflow_variables_name_real_settings(
    compose: dict[str, Any], resolved: dict[str, Any]
) -> None:
    settings, extra = settings_env_names(), known_pharmaflow_names()
    assert "PHARMAFLOW_ALERTS_SLACK_URL" in extra and "PHARMAFLOW_DATA_DIR" in extra
    for name, service in image_services(resolved).items():
        for key in cf.environment(service):
            if key.startswith("AIRFLOW__") or key == "AIRFLOW_HOME":
                continue  # judged by the installed Airflow (airflow_probe)
            assert key in settings | extra, f"{name}: {key} is not a pharmaflow setting"
    # interpolation variables named like settings are settings too
    for match in cf.references(compose):
        if match["name"].startswith("PHARMAFLOW_"):
            assert match["name"] in settings | extra, match["name"]


def test_settings_load_from_every_service_environment(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's PHARMAFLOW_* values validate (types, choices, ranges) as the process in
    the container would load them."""
    for name, service in image_services(resolved).items():
        for key in list(os.environ):
            if key.startswith("PHARMAFLOW_") or key in settings_env_names():
                monkeypatch.delenv(key, raising=False)
        env = cf.environment(service)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        loaded = Settings(_env_file=None)  # type: ignore[call-arg]
        if "PHARMAFLOW_DATA_DIR" in env:
            assert str(loaded.data_dir) == "/data", name
            assert loaded.realtime_store_url.startswith("postgresql://pharmaflow:"), name
            assert loaded.tracking_uri == "http://mlflow:5000", name
            assert loaded.kafka_bootstrap_servers == "kafka:9092", name
            assert loaded.warehouse_target == "duckdb", name


def test_urls_name_services_of_this_file(resolved: dict[str, Any]) -> None:
    """Every URL a service is given points at a service of the file, on a port it serves."""
    services = resolved["services"]
    ports = {
        "postgres": {5432},
        "kafka": {9092},
        "mlflow": {5000},
        "prometheus": {9090},
        "airflow-api-server": {8080},
    }
    seen = 0
    for name, service in services.items():
        for key, value in cf.environment(service).items():
            if not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^,\s]+", value):
                continue  # not one URL (Kafka's listener lists are judged elsewhere)
            url = urlsplit(value)
            if url.hostname in (None, "localhost", "127.0.0.1"):
                continue
            assert url.hostname in services, f"{name}: {key} -> {url.hostname}"
            assert url.port in ports[url.hostname], f"{name}: {key} -> {url.netloc}"
            seen += 1
    assert seen >= 10


# ---- (d) no secret literal -------------------------------------------------------------------

_SECRET_SHAPES = re.compile(
    r"\b[0-9a-fA-F]{32,}\b|-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|xox[abp]-|"
    r"hooks\.slack\.com/services/T"
)
_USERINFO = re.compile(r"://[^/@\s:]+:(?P<password>[^@/\s]+)@")


def test_credentials_in_compose_are_required_references(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in cf.environment(service).items():
            if cf.SECRET_NAME.search(key) and not key.endswith("_FILE"):  # _FILE: a path
                match = cf.REFERENCE.fullmatch(value)
                assert match, f"{name}: {key} is a literal, not a ${{VAR}} reference"
                assert match["op"] == ":?", f"{name}: {key}: use ${{VAR:?…}} (no default)"
            for found in _USERINFO.finditer(value):
                assert cf.REFERENCE.fullmatch(found["password"]), f"{name}: {key}"
    text = cf.COMPOSE_FILE.read_text()
    assert not _SECRET_SHAPES.search(text), _SECRET_SHAPES.search(text)


def test_env_example_holds_placeholders_only() -> None:
    example = cf.env_example()
    secrets = {k for k in example if cf.SECRET_NAME.search(k)}
    assert len(secrets) >= 9
    for key in secrets:
        assert example[key] == "change-me", f"{key}={example[key]!r}: use change-me"
    assert {k for k, v in example.items() if v == "change-me"} == secrets
    assert not _SECRET_SHAPES.search(cf.ENV_EXAMPLE.read_text())


def test_the_real_env_file_is_not_committed() -> None:
    ignored = (cf.ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert ".env" in cf.DOCKERIGNORE.read_text().splitlines()


def test_the_secret_scan_can_fail(compose: dict[str, Any]) -> None:
    """A literal password is caught, whether as a variable or inside a URL."""
    leaky = copy.deepcopy(compose)
    leaky["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    with pytest.raises(AssertionError, match="literal"):
        test_credentials_in_compose_are_required_references(leaky)
    leaky = copy.deepcopy(compose)
    leaky["services"]["api"]["environment"]["PHARMAFLOW_SURVEY_DSN"] = (
        "postgresql://u:pw@postgres/db"
    )
    with pytest.raises(AssertionError):
        test_credentials_in_compose_are_required_references(leaky)
