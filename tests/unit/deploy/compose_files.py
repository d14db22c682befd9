"""docker-compose.yml, .env.example and the Dockerfile read as data, for the deploy tests.

The compose file is loaded with a real YAML parser (merge keys `<<:` resolved, as Compose
does) and interpolated here with Compose's rules for the two forms the file may use,
`${VAR:-default}` and `${VAR:?message}` (plus `$$` for a literal dollar): the tests can then
judge every service's real command and environment without a Docker engine. The integration
tests check this interpolation against docker-compose's own `config` output, so the two cannot
drift apart unnoticed.

A service "runs the image" when it is built from this repository (`build.context: .`); its
effective argv is its `entrypoint` (else the Dockerfile's ENTRYPOINT) followed by its
`command` (else the Dockerfile's CMD), exactly as Docker combines them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_DIR = ROOT / "deploy" / "compose"
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")  # Debian's 1.29 (`make compose`)

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")
BARE_REFERENCE = re.compile(r"(?<!\$)\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_ENV_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")

# Names whose values are credentials.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)


def run_compose(
    binary: Path, env_file: Path, *args: str, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    """docker-compose in a clean environment: an exported variable must not stand in for one
    the env file lacks."""
    return subprocess.run(
        [str(binary), "-f", str(compose_file), "--project-directory", str(ROOT),
         "--env-file", str(env_file), *args],
        env={"PATH": os.environ["PATH"], "HOME": str(env_file.parent)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def load_compose() -> dict[str, Any]:
    """docker-compose.yml as parsed YAML (anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    """.env.example's variables, in order (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        assert match, f".env.example: not NAME=value: {line!r}"
        out[match["name"]] = match["value"]
    return out


def strings(node: Any) -> list[str]:
    """Every string value in a parsed YAML tree (mapping keys excluded: Compose interpolates
    values only)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def references(compose: dict[str, Any]) -> list[re.Match[str]]:
    """Every `${...}` reference in the compose file's values."""
    return [m for text in strings(compose) for m in REFERENCE.finditer(text)]


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset or empty."""


def interpolate_text(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one value, for the forms this file may use."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == ":?":
            if not value:
                raise MissingVariable(f"{name}: {arg}")
            return value
        raise AssertionError(f"unsupported interpolation ${{{name}{op or ''}{arg}}}")

    placeholder = "\0dollar\0"
    return REFERENCE.sub(one, text.replace("$$", placeholder)).replace(placeholder, "$")


def interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def resolved(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file interpolated with .env.example (or `env`)."""
    return interpolate(load_compose(), env_example() if env is None else env)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (list form `NAME=value` accepted too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def as_argv(value: Any) -> list[str]:
    """An entrypoint or command in exec (list) or shell-free string form."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def runs_image(service: dict[str, Any]) -> bool:
    """Built from this repository's Dockerfile."""
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    return context in (".", "./")


# ---- the Dockerfile -------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # continuation lines joined, comments dropped
    stage: int  # index of the FROM it belongs to (-1: before the first FROM)

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's list, or None for the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1].strip() if " CMD " in f" {text}" else ""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


def dockerfile(text: str | None = None) -> list[Instruction]:
    """The Dockerfile's instructions: a line parser, enough for this repository's file
    (comments, blank lines, backslash continuations, the default escape character)."""
    text = DOCKERFILE.read_text() if text is None else text
    out: list[Instruction] = []
    stage = -1
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buffer += line[:-1].rstrip() + " "
            continue
        full = (buffer + line).strip()
        buffer = ""
        if not full:
            continue
        keyword, _, args = full.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not buffer, "Dockerfile ends inside a continued instruction"
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def image_argv(instructions: list[Instruction]) -> tuple[list[str], list[str]]:
    """The final stage's ENTRYPOINT and CMD (exec form; the last of each wins)."""
    stage = final_stage(instructions)
    entry = [i for i in stage if i.keyword == "ENTRYPOINT"]
    cmd = [i for i in stage if i.keyword == "CMD"]
    return (
        (entry[-1].exec_form() or []) if entry else [],
        (cmd[-1].exec_form() or []) if cmd else [],
    )


def service_argv(service: dict[str, Any], instructions: list[Instruction]) -> list[str]:
    """What Docker runs for a service built from the image: entrypoint + command."""
    image_entry, image_cmd = image_argv(instructions)
    if "entrypoint" in service:
        # an entrypoint set in compose discards the image's CMD too
        return as_argv(service["entrypoint"]) + as_argv(service.get("command"))
    command = as_argv(service["command"]) if "command" in service else image_cmd
    return image_entry + command
