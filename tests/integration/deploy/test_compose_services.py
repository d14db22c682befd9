"""The files docker-compose.yml's services run on, exercised with the real programs.

No container starts here (no Docker engine), so each service's own input is run by the same
program outside Docker wherever that program is on this machine:

- Prometheus: the configuration laid out exactly as the service's bind mounts place it, read
  by `promtool check config` (rule files included); its jobs are the shipped configuration's.
- Grafana: every variable the provisioning files read is set, to the dashboards' mount and
  the prometheus service.
- PostgreSQL: the init script run by a real server (a scratch cluster started for the test),
  then logged in to as each role: each reaches its own database and not the other's.
- kafka-topics: its entrypoint and command run against a real Kafka-protocol broker (the
  embedded one) create every domain and dead-letter topic with the configured partitions.
- `make compose-env`'s script: a generated `.env` has keys pharmaflow accepts, a Fernet key
  Airflow accepts, URL-safe passwords, and docker-compose validates the stack with it.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import yaml

from pharmaflow.broker.topics import DOMAIN_TOPICS, dead_letter_topic
from pharmaflow.ingest.phi.keys import parse_key
from tests.unit.deploy import compose_files as cf

PROMTOOL = Path("/usr/bin/promtool")
INITDB = shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb"
PG_CTL = shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl"
MAKE_ENV = cf.COMPOSE_DIR / "make_env.py"
INIT_SCRIPT = cf.COMPOSE_DIR / "postgres" / "initdb" / "10-pharmaflow.sh"


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    return cf.resolved()


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of a service's bind mounts (named volumes left out)."""
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((cf.ROOT / source).resolve(), target))
    return out


# ---- Prometheus ------------------------------------------------------------------------------


def test_prometheus_config_is_valid_as_mounted(resolved: dict[str, Any], tmp_path: Path) -> None:
    """promtool reads the config where the container reads it, rule files resolved relative
    to it, exactly as the bind mounts lay them out."""
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: `make prometheus` installs it"
    service = resolved["services"]["prometheus"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in service["command"])
    root = tmp_path / "container"
    for source, target in bind_mounts(service):
        assert source.exists(), f"{source} is mounted but missing"
        place = root / target.lstrip("/")
        place.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, place)
    config = root / flags["config.file"].lstrip("/")
    done = subprocess.run(
        [str(PROMTOOL), "check", "config", str(config)], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rules = sorted((cf.ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    assert f"SUCCESS: {len(rules)} rule files found" in done.stdout


def test_prometheus_jobs_match_the_shipped_config_and_reach_services(
    resolved: dict[str, Any],
) -> None:
    """The rules and the dashboard group by job: the compose config keeps the shipped job
    names, intervals and rule files; its targets are this file's services and ports."""
    shipped = yaml.safe_load((cf.ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    ours = yaml.safe_load((cf.COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    assert ours["global"] == shipped["global"]
    assert ours["rule_files"] == shipped["rule_files"]
    assert [j["job_name"] for j in ours["scrape_configs"]] == [
        j["job_name"] for j in shipped["scrape_configs"]
    ]
    services = resolved["services"]
    instructions = cf.dockerfile()
    for job in ours["scrape_configs"]:
        targets = [t for s in job.get("static_configs", []) for t in s["targets"]]
        targets += [f"{n}:{d['port']}" for d in job.get("dns_sd_configs", []) for n in d["names"]]
        assert targets, job["job_name"]
        for target in targets:
            host, port = target.rsplit(":", 1)
            assert host in services, f"{job['job_name']}: {host} is no service"
            argv = cf.service_argv(services[host], instructions)
            assert port in argv, f"{job['job_name']}: {host} does not listen on {port} ({argv})"


# ---- Grafana ---------------------------------------------------------------------------------


def test_grafana_provisioning_variables_are_set(resolved: dict[str, Any]) -> None:
    service = resolved["services"]["grafana"]
    env = cf.environment(service)
    mounts = {source: target for source, target in bind_mounts(service)}
    provisioning = cf.ROOT / "deploy" / "grafana" / "provisioning"
    wanted = {
        m["name"]
        for path in provisioning.rglob("*.yml")
        for m in cf.REFERENCE.finditer(path.read_text())
    }
    assert wanted == {"PHARMAFLOW_PROMETHEUS_URL", "PHARMAFLOW_GRAFANA_DASHBOARDS"}
    assert wanted <= set(env)
    assert env["GF_PATHS_PROVISIONING"] == mounts[provisioning]
    assert env["PHARMAFLOW_GRAFANA_DASHBOARDS"] == mounts[cf.ROOT / "deploy/grafana/dashboards"]
    url = urlsplit(env["PHARMAFLOW_PROMETHEUS_URL"])
    assert url.hostname == "prometheus" and url.port == 9090


# ---- PostgreSQL: the init script on a real server ------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """PostgreSQL's tools refuse to run as root: run them as the postgres user when root."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def scratch_cluster() -> Iterator[dict[str, Any]]:
    """A throw-away PostgreSQL cluster on a free loopback port (password auth over TCP, as
    the postgres image configures it), stopped and removed afterwards."""
    if not Path(INITDB).exists():
        pytest.fail(f"{INITDB} is missing: install Debian's postgresql package")
    base = Path(tempfile.mkdtemp(prefix="pf-compose-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    done = _as_postgres(
        [INITDB, "-D", str(data), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    try:
        # -l: the server's output goes to a file, not to the pipes this run waits on
        done = _as_postgres(
            [PG_CTL, "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w",
             "-t", "60", "start"]
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield {"socket": str(base), "port": port}
    finally:
        _as_postgres([PG_CTL, "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_init_script_creates_isolated_roles(
    scratch_cluster: dict[str, Any], resolved: dict[str, Any]
) -> None:
    env = cf.environment(resolved["services"]["postgres"])
    assert (cf.ROOT / "deploy/compose/postgres/initdb").resolve() in dict(
        bind_mounts(resolved["services"]["postgres"])
    )
    passwords = {"pharmaflow": "pf-'quote\"-$x", "airflow": "af-secret"}  # quoting survives
    done = _as_postgres(
        ["sh", str(INIT_SCRIPT)],
        env={
            "PATH": os.environ["PATH"],
            "PGHOST": scratch_cluster["socket"],
            "PGPORT": str(scratch_cluster["port"]),
            "POSTGRES_USER": env["POSTGRES_USER"],
            "POSTGRES_PHARMAFLOW_PASSWORD": passwords["pharmaflow"],
            "POSTGRES_AIRFLOW_PASSWORD": passwords["airflow"],
        },
    )
    assert done.returncode == 0, done.stderr

    def connect(user: str, database: str, password: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=scratch_cluster["port"], user=user, dbname=database,
            password=password, connect_timeout=10,
        )  # fmt: skip

    for role, password in passwords.items():
        with connect(role, role, password) as conn:
            conn.execute("create table probe (x int)")  # owns its database's public schema
            assert conn.execute("select current_user").fetchone() == (role,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(role, role, "wrong")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect("pharmaflow", "airflow", passwords["pharmaflow"])
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect("airflow", "pharmaflow", passwords["airflow"])
    # the DSN the services are given names this role and database: pointed at the scratch
    # server (same user, database, path), it connects
    url = urlsplit(cf.environment(resolved["services"]["api"])["PHARMAFLOW_SURVEY_DSN"])
    assert (url.username, url.path, url.hostname, url.port) == (
        "pharmaflow", "/pharmaflow", "postgres", 5432,
    )  # fmt: skip
    password = quote(passwords["pharmaflow"], safe="")
    local = url._replace(netloc=f"pharmaflow:{password}@127.0.0.1:{scratch_cluster['port']}")
    with psycopg.connect(local.geturl(), connect_timeout=10) as conn:
        assert conn.execute("select current_database()").fetchone() == ("pharmaflow",)


def test_postgres_init_script_refuses_a_missing_password(scratch_cluster: dict[str, Any]) -> None:
    done = _as_postgres(
        ["sh", str(INIT_SCRIPT)],
        env={"PATH": os.environ["PATH"], "PGHOST": scratch_cluster["socket"],
             "PGPORT": str(scratch_cluster["port"]), "POSTGRES_AIRFLOW_PASSWORD": "x"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "POSTGRES_PHARMAFLOW_PASSWORD" in done.stderr


# ---- kafka-topics against a real broker -------------------------------------------------------


def test_topic_init_creates_every_topic_on_a_broker(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    from confluent_kafka.admin import AdminClient

    from pharmaflow.broker.embedded import EmbeddedBroker

    argv = cf.service_argv(resolved["services"]["kafka-topics"], cf.dockerfile())
    assert argv[0] == "python"
    partitions = int(argv[-1])
    broker = EmbeddedBroker(tmp_path / "broker")
    info = broker.start()
    try:
        before = AdminClient({"bootstrap.servers": info.bootstrap}).list_topics(timeout=15)
        assert not set(before.topics) & set(DOMAIN_TOPICS.values())
        # the service's argv, its bootstrap replaced by this broker's
        command = [sys.executable, *argv[1:-2], info.bootstrap, str(partitions)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        again = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr  # a restart of the one-shot is harmless
        metadata = AdminClient({"bootstrap.servers": info.bootstrap}).list_topics(timeout=15)
    finally:
        broker.stop()
    wanted = {t for d in DOMAIN_TOPICS.values() for t in (d, dead_letter_topic(d))}
    assert wanted <= set(metadata.topics)
    for topic in wanted:
        assert len(metadata.topics[topic].partitions) == partitions, topic


# ---- make compose-env -------------------------------------------------------------------------


def test_make_env_writes_usable_secrets(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    target = tmp_path / ".env"
    done = subprocess.run(
        [sys.executable, str(MAKE_ENV), str(cf.ENV_EXAMPLE), str(target)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert target.stat().st_mode & 0o777 == 0o600
    text = target.read_text()
    values = dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    assert "change-me" not in values.values()
    example = cf.env_example()
    assert set(values) == set(example)
    for name, value in example.items():
        if value != "change-me":
            assert values[name] == value, f"{name} changed"
    for name in ("PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_VAULT_KEY"):
        assert len(parse_key(values[name], name)) == 32  # pharmaflow's own key check
    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # raises on a malformed key
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    for name in ("POSTGRES_PASSWORD", "POSTGRES_PHARMAFLOW_PASSWORD", "POSTGRES_AIRFLOW_PASSWORD"):
        assert quote(values[name], safe="") == values[name], f"{name} is not URL-safe"
    secrets = [v for k, v in values.items() if example[k] == "change-me"]
    assert len(set(secrets)) == len(secrets), "two secrets share a value"
    # the stack validates with it, and no placeholder is left in what Compose resolves
    if not cf.DOCKER_COMPOSE.exists():
        pytest.fail(f"{cf.DOCKER_COMPOSE} is missing: run `make compose-check`")
    config = cf.run_compose(cf.DOCKER_COMPOSE, target, "config")
    assert config.returncode == 0, config.stderr
    assert "change-me" not in config.stdout


def test_make_env_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("PHARMAFLOW_HMAC_KEY=the-volume's-key\n")
    done = subprocess.run(
        [sys.executable, str(MAKE_ENV), str(cf.ENV_EXAMPLE), str(target)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert target.read_text() == "PHARMAFLOW_HMAC_KEY=the-volume's-key\n"
