"""Offline checks of the GCP deployment (deploy/terraform, docs/deploy-gcp.md).

`terraform plan` needs the Google provider (a download) and a GCP project, neither of which a
test run has. What can be checked without them is checked here: every file parses, is
`terraform fmt` clean and documents its variables; every module call matches the module's
variables; and the properties the design promises — no primitive role and no public member
anywhere, one service account per service, lifecycle ages that only grow, exactly-once
subscriptions with dead letters, the speed layer only against Kafka, no secret value in any
file, prod stricter than dev — and that the BigQuery physical design restated in Terraform is
the one the dbt models set.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
TF = REPO / "deploy" / "terraform"
MODULES = TF / "modules"
ENVS = TF / "envs"
DBT = REPO / "src" / "pharmaflow" / "warehouse" / "dbt"

OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
EXPECTED_MODULES = {"bigquery", "storage", "pubsub", "iam", "secrets", "cloudrun", "composer"}
SERVICES = {"api", "dashboard", "ingest", "realtime", "composer", "warehouse", "mlflow"}
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
# The only roles that exist at project level alone (modules/iam/main.tf says why).
PROJECT_ROLES = {"roles/bigquery.jobUser", "roles/composer.worker"}
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
TERRAFORM_META = {"source", "version", "providers", "depends_on", "for_each", "count"}


def tf_files() -> list[Path]:
    return sorted(TF.rglob("*.tf"))


@cache
def parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=OPTIONS)


def blocks(path: Path, kind: str) -> dict[str, Any]:
    """The blocks of one kind in a file (`variable`, `module`, `output`, ...), by label."""
    merged: dict[str, Any] = {}
    for block in parse(path).get(kind, []):
        merged.update(block)
    return merged


def resources(path: Path, rtype: str) -> dict[str, dict[str, Any]]:
    """The resources of one type in a file, by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in parse(path).get("resource", []):
        found.update(block.get(rtype, {}))
    return found


def dir_blocks(directory: Path, kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        merged.update(blocks(path, kind))
    return merged


def locals_of(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in parse(path).get("locals", []):
        merged.update(block)
    return merged


def one(value: Any) -> Any:
    """A nested block as python-hcl2 gives it (a list of one dict) as the dict."""
    if isinstance(value, list):
        assert len(value) == 1, value
        return value[0]
    return value


def strings(node: Any, skip: frozenset[str] = frozenset()) -> list[str]:
    """Every string in a parsed tree, leaving out the subtrees under keys in `skip`."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() if k not in skip for s in strings(v, skip)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v, skip)]
    return []


def env_modules(env: str) -> dict[str, dict[str, Any]]:
    return blocks(ENVS / env / "main.tf", "module")


def calls_of(env: str, module: str) -> dict[str, dict[str, Any]]:
    """The calls of one module (by its directory name) in an environment, by call name."""
    return {
        name: call
        for name, call in env_modules(env).items()
        if call["source"] == f"../../modules/{module}"
    }


def variable_default(module: str, name: str) -> Any:
    return dir_blocks(MODULES / module, "variable")[name]["default"]


# --- the files themselves -------------------------------------------------------------------


def test_layout_is_complete() -> None:
    """Each module has its three files and each environment its four, so a reader (and the
    variables table) finds things where docs/deploy-gcp.md says they are."""
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} == EXPECTED_MODULES
    for module in EXPECTED_MODULES:
        for name in ("main.tf", "variables.tf", "outputs.tf"):
            assert (MODULES / module / name).is_file(), f"modules/{module}/{name} is missing"
    assert {p.name for p in ENVS.iterdir() if p.is_dir()} == {"dev", "prod"}
    for env in ("dev", "prod"):
        for name in ("main.tf", "variables.tf", "outputs.tf", "terraform.tfvars.example"):
            assert (ENVS / env / name).is_file(), f"envs/{env}/{name} is missing"


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(TF)))
def test_every_file_parses(path: Path) -> None:
    """python-hcl2 reads every file (the same grammar checkov's own hcl2 fork accepts)."""
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_tfvars_examples_parse_and_name_declared_variables(env: str) -> None:
    """An example that sets an undeclared variable would fail at plan: it must not drift."""
    example = ENVS / env / "terraform.tfvars.example"
    values = hcl2.loads(example.read_text(encoding="utf-8"), serialization_options=OPTIONS)
    declared = dir_blocks(ENVS / env, "variable")
    assert set(values) <= set(declared), set(values) - set(declared)
    required = {n for n, spec in declared.items() if "default" not in spec}
    assert required <= set(values), f"{env}: the example leaves out {required - set(values)}"


def test_every_variable_has_description_and_type() -> None:
    missing = [
        f"{path.relative_to(TF)}: {name} lacks {field}"
        for path in tf_files()
        for name, spec in blocks(path, "variable").items()
        for field in ("description", "type")
        if not str(spec.get(field, "")).strip()
    ]
    assert not missing, missing
    assert sum(len(blocks(p, "variable")) for p in tf_files()) > 50  # the walk found them


def test_every_output_has_description() -> None:
    missing = [
        f"{path.relative_to(TF)}: {name}"
        for path in tf_files()
        for name, spec in blocks(path, "output").items()
        if not str(spec.get("description", "")).strip()
    ]
    assert not missing, missing


def test_providers_and_terraform_pinned() -> None:
    """Every root and module pins Terraform and the Google provider to 6.x, so a 7.0 with
    breaking changes is an explicit upgrade, never a surprise at init."""
    for directory in [*sorted(MODULES.iterdir()), *sorted(ENVS.iterdir())]:
        terraform = one(parse(directory / "main.tf")["terraform"])
        where = directory.relative_to(TF)
        assert terraform.get("required_version", "").startswith(">= 1."), where
        google = one(terraform["required_providers"])["google"]
        assert google["source"] == "hashicorp/google", where
        assert re.fullmatch(r"~> 6\.\d+", google["version"]), (where, google["version"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_backend_is_gcs_partial_configuration(env: str) -> None:
    """The state bucket comes from `terraform init -backend-config=bucket=...`: no bucket name
    in the code, and each environment keeps its state under its own prefix."""
    terraform = one(parse(ENVS / env / "main.tf")["terraform"])
    gcs = one(terraform["backend"])["gcs"]
    assert "bucket" not in gcs
    assert gcs["prefix"] == f"pharmaflow/{env}"


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform") or "/usr/local/bin/terraform"
    if not Path(terraform).exists():
        # Terraform is neither on PyPI nor in Debian (its licence), so `make test` cannot
        # install it; the files still parse (python-hcl2) and pass checkov without it.
        pytest.skip(
            "the terraform binary is not installed (PATH, /usr/local/bin/terraform): "
            "`terraform fmt -check -recursive deploy/terraform` not run"
        )
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "-no-color"],
        cwd=TF,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


# --- module calls ---------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_module_calls_pass_declared_and_required_variables(env: str) -> None:
    """What `terraform validate` would say first, without the provider: an argument the module
    does not declare, or a required one left out, is an error at plan."""
    calls = env_modules(env)
    assert {c["source"].rsplit("/", 1)[-1] for c in calls.values()} == EXPECTED_MODULES
    for name, call in calls.items():
        module_dir = (ENVS / env / call["source"]).resolve()
        declared = dir_blocks(module_dir, "variable")
        passed = set(call) - TERRAFORM_META
        required = {v for v, spec in declared.items() if "default" not in spec}
        assert passed <= set(declared), f"{env}.{name}: undeclared {passed - set(declared)}"
        assert required <= passed, f"{env}.{name}: missing required {required - passed}"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_env_references_only_existing_module_outputs(env: str) -> None:
    """`module.<call>.<output>` must name an output the called module declares."""
    calls = env_modules(env)
    text = (ENVS / env / "main.tf").read_text() + (ENVS / env / "outputs.tf").read_text()
    refs = set(re.findall(r"module\.(\w+)\.(\w+)", text))
    assert refs, "no module outputs referenced"
    for call, output in refs:
        assert call in calls, f"{env}: module.{call} is not called"
        outputs = dir_blocks((ENVS / env / calls[call]["source"]).resolve(), "output")
        assert output in outputs, f"{env}: module.{call}.{output} is not an output"


def test_env_variables_used_are_declared() -> None:
    for env in ("dev", "prod"):
        text = "".join(p.read_text() for p in (ENVS / env).glob("*.tf"))
        used = set(re.findall(r"\bvar\.(\w+)", text))
        declared = set(dir_blocks(ENVS / env, "variable"))
        assert used <= declared, f"{env}: {used - declared} used but not declared"
        assert declared <= used, f"{env}: {declared - used} declared but never used"


@pytest.mark.parametrize("module", sorted(EXPECTED_MODULES))
def test_module_variables_used_are_declared(module: str) -> None:
    text = "".join(p.read_text() for p in (MODULES / module).glob("*.tf"))
    used = set(re.findall(r"\bvar\.(\w+)", text))
    declared = set(dir_blocks(MODULES / module, "variable"))
    assert used <= declared, f"{module}: {used - declared} used but not declared"
    assert declared <= used, f"{module}: {declared - used} declared but never used"


# --- IAM --------------------------------------------------------------------------------------


def test_no_primitive_roles_anywhere() -> None:
    """owner/editor/viewer grant whole-project power; no file may name one as a role."""
    for path in tf_files():
        roles = [s for s in strings(parse(path)) if s.startswith("roles/")]
        assert not PRIMITIVE_ROLES & set(roles), path
        assert not re.search(r"roles/(owner|editor|viewer)\b", path.read_text()), path


def test_project_level_grants_are_the_two_narrow_ones() -> None:
    """Everything else is granted on one resource (dataset, bucket, subscription, topic,
    secret, service); at project level only jobUser and composer.worker, never an admin."""
    project_roles: set[str] = set()
    for path in tf_files():
        for rtype in ("google_project_iam_member", "google_project_iam_binding"):
            for name, res in resources(path, rtype).items():
                role = res["role"]
                if role.startswith("roles/"):
                    project_roles.add(role)
                else:  # data-driven: the role comes from a local list of grants
                    assert "each.value.role" in role, (path, name, role)
                    grants = locals_of(path)["project_grants"]
                    project_roles |= {g["role"] for g in grants}
        assert not resources(path, "google_project_iam_policy"), path
    assert project_roles == PROJECT_ROLES
    assert not any("admin" in r.lower() for r in project_roles)


def test_no_public_members() -> None:
    """No allUsers / allAuthenticatedUsers anywhere but in the validations that refuse them
    (and the descriptions that say so)."""
    for path in [*tf_files(), *ENVS.glob("*/terraform.tfvars.example")]:
        if path.suffix == ".tf":
            found = [
                s
                for s in strings(parse(path), skip=frozenset({"validation", "description"}))
                if any(m in s for m in PUBLIC_MEMBERS)
            ]
            assert not found, (path, found)
        else:
            assert not any(m in path.read_text() for m in PUBLIC_MEMBERS), path
    # the validations exist where members come from callers
    for module in ("cloudrun", "pubsub"):
        text = (MODULES / module / "variables.tf").read_text()
        assert '"allUsers", "allAuthenticatedUsers"' in text, module


def test_one_service_account_per_service() -> None:
    """Each service runs as its own account, so a compromised process holds only its grants."""
    iam = MODULES / "iam" / "main.tf"
    assert set(locals_of(iam)["services"]) == SERVICES
    accounts = resources(iam, "google_service_account")
    assert list(accounts) == ["svc"]
    assert accounts["svc"]["for_each"] == "${local.services}"
    for env in ("dev", "prod"):
        used: dict[str, str] = {}
        for name, call in calls_of(env, "cloudrun").items():
            match = re.fullmatch(
                r'\$\{module\.iam\.emails\["(\w+)"\]\}', call["service_account_email"]
            )
            assert match, (env, name, call["service_account_email"])
            assert match[1] == name, f"{env}: service {name} runs as {match[1]}'s account"
            # its secrets are its own account's
            assert call["secret_env"] == f'${{local.secret_env["{name}"]}}', (env, name)
            used[name] = match[1]
        assert len(set(used.values())) == len(used)
        assert set(used) == {"api", "dashboard", "ingest", "realtime", "mlflow"}
        composer = one(list(calls_of(env, "composer").values()))
        assert composer["service_account_email"] == '${module.iam.emails["composer"]}'


def test_grants_are_resource_level_and_name_known_services() -> None:
    """Every grant in the iam module goes to one of the service accounts it creates."""
    grants = locals_of(MODULES / "iam" / "main.tf")
    for key in ("dataset_grants", "project_grants", "bucket_grants"):
        assert grants[key], key
        for grant in grants[key]:
            assert grant["sa"] in SERVICES, grant
            assert grant["role"].startswith("roles/") and grant["role"] not in PRIMITIVE_ROLES
    # only the build writes BigQuery; serving and checks read gold and silver
    writers = {(g["sa"], g["layer"]) for g in grants["dataset_grants"] if "Editor" in g["role"]}
    assert writers == {("warehouse", layer) for layer in ("bronze", "silver", "gold", "reference")}


# --- storage ----------------------------------------------------------------------------------

CLASS_ORDER = ["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"]


def resolve_number(value: Any) -> int:
    """A lifecycle age: a literal, or `${var.x}` resolved to the module's default."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(value))
    assert match, value
    return int(variable_default("storage", match[1]))


def test_lifecycle_goes_standard_nearline_coldline_then_delete() -> None:
    bucket = resources(MODULES / "storage" / "main.tf", "google_storage_bucket")["this"]
    assert bucket["storage_class"] == "STANDARD"
    steps = []
    for rule in bucket["lifecycle_rule"]:
        action, condition = one(rule["action"]), one(rule["condition"])
        target = action.get("storage_class") if action["type"] == "SetStorageClass" else "DELETE"
        steps.append((target, resolve_number(condition["age"]), condition))
    targets = [t for t, _, _ in steps]
    assert targets[-1] == "DELETE" and targets.count("DELETE") == 1, targets
    assert targets[:2] == ["NEARLINE", "COLDLINE"], targets
    # colder at every step, never back to a warmer class
    assert [CLASS_ORDER.index(t) for t in targets[:-1]] == sorted(
        {CLASS_ORDER.index(t) for t in targets[:-1]}
    )
    ages = [age for _, age, _ in steps]
    assert ages == sorted(set(ages)), f"ages must increase: {ages}"
    assert ages[:2] == [30, 90]
    # a transition only applies to warmer classes than its target
    for target, _, condition in steps[:-1]:
        assert all(
            CLASS_ORDER.index(c) < CLASS_ORDER.index(target)
            for c in condition["matches_storage_class"]
        ), (target, condition)
    # the deletion is the GxP retention period, 7 years by default, justified in the file
    assert steps[-1][1] == 2555
    text = (MODULES / "storage" / "main.tf").read_text()
    assert "21 CFR Part 11" in text and "Annex 11" in text
    for env in ("dev", "prod"):
        assert dir_blocks(ENVS / env, "variable")["gxp_retention_days"]["default"] == 2555


def test_buckets_are_private_and_protected() -> None:
    bucket = resources(MODULES / "storage" / "main.tf", "google_storage_bucket")["this"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False
    # versioning xor a retention policy is enforced at plan
    preconditions = [one(p)["condition"] for p in one(bucket["lifecycle"])["precondition"]]
    assert any("versioning_enabled" in c and "retention_policy_days" in c for c in preconditions)
    # each bucket of each environment has versioning or a (locked in prod) retention policy
    for env in ("dev", "prod"):
        for name, call in calls_of(env, "storage").items():
            versioned = call.get("versioning_enabled") is True
            retained = "retention_policy_days" in call
            assert versioned != retained, (env, name)
            if retained:
                assert (
                    env == "prod" and call["lock_retention_policy"] == "${var.lock_lake_retention}"
                )
    lock = dir_blocks(ENVS / "prod", "variable")["lock_lake_retention"]
    assert lock["default"] is True
    assert "retention_policy_days" in calls_of("prod", "storage")["lake"]


# --- Pub/Sub ----------------------------------------------------------------------------------


def test_subscriptions_are_exactly_once_with_dead_letters() -> None:
    path = MODULES / "pubsub" / "main.tf"
    subscriptions = resources(path, "google_pubsub_subscription")
    topics = resources(path, "google_pubsub_topic")
    assert subscriptions
    dead_letter_topics = {name for name, t in topics.items() if name != "events"}
    assert dead_letter_topics == {"dlq", "undeliverable"}
    for name, sub in subscriptions.items():
        assert sub["enable_exactly_once_delivery"] is True, name
        assert one(sub["expiration_policy"])["ttl"] == "", name
        if "dead_letter_policy" in sub:
            policy = one(sub["dead_letter_policy"])
            assert policy["dead_letter_topic"] == "${google_pubsub_topic.undeliverable.id}"
            assert resolve_pubsub(policy["max_delivery_attempts"]) >= 5
            assert "retry_policy" in sub, name
            assert sub["topic"] == "${google_pubsub_topic.events.id}", name
        else:
            # only the hold subscriptions at the end of the line, on dead-letter topics
            targets = set(re.findall(r"google_pubsub_topic\.(\w+)\.id", str(sub["for_each"])))
            assert targets == dead_letter_topics, (name, sub["for_each"])
    consumers = subscriptions["consumer"]
    assert consumers["for_each"] == "${local.consumers}"
    # ingest is the only consumer: the speed layer reads Kafka, and a subscription nobody reads
    # keeps (and bills) every message for its retention
    assert locals_of(path)["consumers"] == '${toset(["ingest"])}'
    # the Pub/Sub service agent can move messages to the dead-letter topic
    topic_grants = resources(path, "google_pubsub_topic_iam_member")
    sub_grants = resources(path, "google_pubsub_subscription_iam_member")
    assert topic_grants["agent_publishes_undeliverable"]["role"] == "roles/pubsub.publisher"
    assert sub_grants["agent_acks_dead_letters"]["role"] == "roles/pubsub.subscriber"


def resolve_pubsub(value: Any) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(value))
    assert match, value
    return int(variable_default("pubsub", match[1]))


def test_ingest_reads_its_pubsub_subscription() -> None:
    """The ingest worker's source is the ingest subscription, in the URL form the Pub/Sub source
    takes (docs/pubsub.md), sealing its dead letters to the `.dlq` topic; and the ingest account
    may pull, read the subscription's settings and publish dead letters, nothing more."""
    for env in ("dev", "prod"):
        args = calls_of(env, "cloudrun")["ingest"]["args"]
        assert args[:2] == ["ingest", "--source"]
        assert args[2] == (
            'pubsub://${var.project_id}/${module.pubsub.subscription_names["ingest"]}'
            "?dead_letter_topic=${module.pubsub.dlq_topic_name}"
        )
    iam = MODULES / "iam" / "main.tf"
    sub_roles = {
        name: res["role"]
        for name, res in resources(iam, "google_pubsub_subscription_iam_member").items()
    }
    assert sub_roles == {
        "ingest_pulls": "roles/pubsub.subscriber",
        "ingest_reads_settings": "roles/pubsub.viewer",
    }
    for name, res in resources(iam, "google_pubsub_subscription_iam_member").items():
        assert res["subscription"] == "${var.ingest_subscription}", name
        assert res["member"] == '${google_service_account.svc["ingest"].member}', name
    # no other subscription is handed to the iam module
    assert {v for v in dir_blocks(MODULES / "iam", "variable") if "subscription" in v} == {
        "ingest_subscription"
    }
    dlq = resources(iam, "google_pubsub_topic_iam_member")["ingest_dead_letters"]
    assert dlq["role"] == "roles/pubsub.publisher" and dlq["topic"] == "${var.dlq_topic}"


def speed_layer_url_pattern(env: str) -> re.Pattern[str]:
    """The regex of the speed_layer_kafka_url validation, to try URLs against."""
    spec = dir_blocks(ENVS / env, "variable")["speed_layer_kafka_url"]
    condition = one(spec["validation"])["condition"]
    match = re.search(r'regex\("([^"]+)"', condition)
    assert match, condition
    assert 'var.speed_layer_kafka_url == ""' in condition, condition
    assert 'strcontains(var.speed_layer_kafka_url, "@")' in condition, condition
    return re.compile(match[1])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_speed_layer_only_with_kafka(env: str) -> None:
    """`pharmaflow realtime` reads kafka:// sources only (its exactly-once state is keyed by Kafka
    partitions and offsets; the Pub/Sub source's replay ledger is in the lake's manifests, which
    the speed layer does not write): its service exists only when a Kafka URL is given, runs
    that URL, never a pubsub:// one, and its secrets exist only with it."""
    variable = dir_blocks(ENVS / env, "variable")["speed_layer_kafka_url"]
    assert variable["type"] == "string" and variable["default"] == ""
    local = locals_of(ENVS / env / "main.tf")
    assert local["speed_layer"] == '${var.speed_layer_kafka_url != ""}'
    realtime = calls_of(env, "cloudrun")["realtime"]
    assert realtime["count"] == "${local.speed_layer ? 1 : 0}"
    assert realtime["args"] == [
        "realtime",
        "--source",
        "${var.speed_layer_kafka_url}",
        "--metrics-port",
        "8080",
    ]
    assert not [s for s in strings(realtime) if "pubsub" in s.lower()], realtime
    # the other services exist whatever the speed layer
    for name, call in env_modules(env).items():
        if name != "realtime":
            assert "count" not in call and "for_each" not in call, (env, name)
    # nothing refers to the instance that may not exist but through a splat
    text = "".join(p.read_text() for p in (ENVS / env).glob("*.tf"))
    assert not re.search(r"module\.realtime\.", text) and "module.realtime[0]" not in text
    # SASL over TLS (Managed Service for Apache Kafka takes TLS only)
    assert realtime["env"] == "${local.speed_layer_env}"
    assert local["speed_layer_env"] == (
        '${merge(local.common_env, {PHARMAFLOW_KAFKA_SECURITY_PROTOCOL = "SASL_SSL"})}'
    )
    # without the speed layer, its account is granted no secret, and its own secrets go
    secrets_call = env_modules(env)["secrets"]
    assert secrets_call["absent_services"] == '${local.speed_layer ? [] : ["realtime"]}'
    # what the URL validation lets through
    pattern = speed_layer_url_pattern(env)
    for url in (
        "kafka://bootstrap.pf.europe-west3.managedkafka.my-project.cloud.goog:9092",
        "kafka://10.0.0.7:9092,10.0.0.8:9092?group=pharmaflow-realtime",
    ):
        assert pattern.search(url) and "@" not in url, url
    for url in ("pubsub://my-project/pharmaflow-realtime", "kafka://", "kafka:///topics", "x"):
        assert not pattern.search(url), url
    example = hcl2.loads(
        (ENVS / env / "terraform.tfvars.example").read_text(), serialization_options=OPTIONS
    )
    url = example.get("speed_layer_kafka_url", "")
    assert url == "" or pattern.search(url), url


def test_secrets_of_absent_services_are_left_out() -> None:
    """modules/secrets drops absent services from every secret's readers, and the secrets
    nobody deployed reads: without the speed layer, its store's writer URL and the Kafka
    credentials are not created, the keys and alert URLs keep their other readers."""
    path = MODULES / "secrets" / "main.tf"
    local = locals_of(path)
    assert "var.absent_services" in local["secrets"]
    assert "local.secrets" in local["accessor_pairs"]
    assert resources(path, "google_secret_manager_secret")["this"]["for_each"] == (
        "${local.secrets}"
    )
    outputs = dir_blocks(MODULES / "secrets", "output")
    assert "var.secrets" not in str(outputs["by_accessor"]["value"])
    # the same filter, in Python, on the catalogue
    catalogue = dir_blocks(MODULES / "secrets", "variable")["secrets"]["default"]
    left = {
        name: [a for a in s["accessors"] if a != "realtime"]
        for name, s in catalogue.items()
        if set(s["accessors"]) - {"realtime"}
    }
    assert set(catalogue) - set(left) == {"realtime-store-dsn", "kafka-username", "kafka-password"}
    assert not any("realtime" in readers for readers in left.values())
    # every service has an entry in the environments' secret_env, even one reading none
    for env in ("dev", "prod"):
        secret_env = locals_of(ENVS / env / "main.tf")["secret_env"]
        assert "keys(module.iam.members)" in secret_env, env
        assert "lookup(module.secrets.by_accessor, svc, [])" in secret_env, env


# --- secrets ----------------------------------------------------------------------------------

SECRET_LOOKING = [
    re.compile(r"(?<!sha256:)\b[0-9a-fA-F]{64}\b"),  # a 256-bit key in hex
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"postgres(?:ql)?://[^/\s:@]+:[^@\s]+@"),  # a URL with a password
    re.compile(r"hooks\.slack\.com/services/"),
    re.compile(r'"private_key"\s*:'),
]


def test_no_secret_value_in_any_file() -> None:
    """Secret containers only: no version resource, no secret data, nothing key-shaped."""
    for path in [*tf_files(), *ENVS.glob("*/terraform.tfvars.example")]:
        text = path.read_text()
        assert "google_secret_manager_secret_version" not in text, path
        assert "secret_data" not in text, path
        for pattern in SECRET_LOOKING:
            assert not pattern.search(text), (path, pattern.pattern)


def test_each_secret_is_read_only_by_the_services_that_need_it() -> None:
    catalogue = dir_blocks(MODULES / "secrets", "variable")["secrets"]["default"]
    expected = {
        "vault-key",
        "hmac-key",
        "security-store-dsn",
        "realtime-store-dsn",
        "realtime-store-reader-dsn",
        "survey-writer-dsn",
        "survey-reader-dsn",
        "alerts-slack-url",
        "alerts-webhook-url",
        "kafka-username",
        "kafka-password",
        "mlflow-backend-dsn",
    }
    assert set(catalogue) == expected
    for name, secret in catalogue.items():
        assert secret["accessors"], name
        assert set(secret["accessors"]) <= SERVICES, name
        assert secret["env"].startswith(("PHARMAFLOW_", "MLFLOW_")), name
    # the keys go to the four processes that load them, nothing else (docs/keys.md)
    for key in ("vault-key", "hmac-key"):
        assert set(catalogue[key]["accessors"]) == {"ingest", "realtime", "api", "composer"}
    # the Kafka SASL credentials are the speed layer's alone (config.py's kafka_username and
    # kafka_password, never in the kafka:// URL)
    assert catalogue["kafka-username"]["env"] == "PHARMAFLOW_KAFKA_USERNAME"
    assert catalogue["kafka-password"]["env"] == "PHARMAFLOW_KAFKA_PASSWORD"
    for name in ("kafka-username", "kafka-password"):
        assert catalogue[name]["accessors"] == ["realtime"], name
    # a database URL is one role's: exactly one reader for each writer role
    for name in ("security-store-dsn", "realtime-store-dsn", "survey-writer-dsn"):
        assert len(catalogue[name]["accessors"]) == 1, name
    # no service gets two secrets into one variable
    for service in SERVICES:
        envs = [s["env"] for s in catalogue.values() if service in s["accessors"]]
        assert len(envs) == len(set(envs)), service
    accessor = resources(MODULES / "secrets" / "main.tf", "google_secret_manager_secret_iam_member")
    assert accessor["accessor"]["role"] == "roles/secretmanager.secretAccessor"


# --- Cloud Run and Composer -------------------------------------------------------------------


def test_services_are_never_public() -> None:
    for path in tf_files():
        assert "INGRESS_TRAFFIC_ALL" not in path.read_text(), path
    allowed = {"INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"}
    for env in ("dev", "prod"):
        for name, call in calls_of(env, "cloudrun").items():
            assert call["ingress"] in allowed, (env, name)
            if name in {"ingest", "realtime"}:
                # pull workers: nobody invokes them, they run without requests
                assert "invoker_members" not in call, (env, name)
                assert call["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
                assert call["cpu_always_allocated"] is True and call["min_instances"] >= 1
    run = resources(MODULES / "cloudrun" / "main.tf", "google_cloud_run_v2_service")["this"]
    assert run["ingress"] == "${var.ingress}"


def test_composer_installs_pharmaflow_with_its_own_account() -> None:
    composer = resources(MODULES / "composer" / "main.tf", "google_composer_environment")["this"]
    config = one(composer["config"])
    software = one(config["software_config"])
    assert software["pypi_packages"] == "${var.pypi_packages}"
    assert one(config["node_config"])["service_account"] == "${var.service_account_email}"
    for env in ("dev", "prod"):
        call = one(list(calls_of(env, "composer").values()))
        assert "pharmaflow" in call["pypi_packages"], env
        # the tasks build on BigQuery, with the same settings as the services
        assert "local.common_env" in call["env_variables"], env
        common = locals_of(ENVS / env / "main.tf")["common_env"]
        assert common["PHARMAFLOW_WAREHOUSE_TARGET"] == "bigquery"
        assert common["PHARMAFLOW_BIGQUERY_DATASET"] == "${var.bigquery_dataset_prefix}"


# --- dev and prod -----------------------------------------------------------------------------


def test_prod_is_stricter_than_dev() -> None:
    dev, prod = env_modules("dev"), env_modules("prod")
    # CMEK on every data store in prod, none in dev
    for name in ("lake", "mlflow_artifacts", "bigquery", "pubsub", "secrets"):
        assert prod[name]["kms_key_name"] == "${var.kms_key_name}", name
        assert "kms_key_name" not in dev[name], name
    prod_vars = dir_blocks(ENVS / "prod", "variable")
    assert "default" not in prod_vars["kms_key_name"]  # required
    # deletion protection
    assert prod["bigquery"]["deletion_protection"] is True
    assert dev["bigquery"]["deletion_protection"] is False
    for name in calls_of("prod", "cloudrun"):
        assert prod[name]["deletion_protection"] is True, name
        assert dev[name]["deletion_protection"] is False, name
    # more instances where load grows (the single-writer ingest stays one: docs/deploy-gcp.md)
    for name in ("api", "dashboard"):
        assert prod[name]["min_instances"] >= 1 > dev[name]["min_instances"]
        assert prod[name]["max_instances"] > dev[name]["max_instances"]
    assert prod["composer"]["high_resilience"] is True
    assert dev["composer"]["high_resilience"] is False
    # released secret versions in prod, the newest in dev
    prod_text = (ENVS / "prod" / "main.tf").read_text()
    dev_text = (ENVS / "dev" / "main.tf").read_text()
    assert "var.secret_versions[s.name]" in prod_text and '"latest"' not in prod_text
    assert 'version = "latest"' in dev_text
    assert "kms_key_name" not in dev_text


# --- BigQuery against dbt ---------------------------------------------------------------------

CONFIG_CALL = re.compile(r"\{\{\s*config\((?P<body>.*?)\)\s*\}\}", re.S)
PARTITION = re.compile(r"pf_bq_partition\((?P<args>[^)]*)\)")
CLUSTER = re.compile(r"pf_bq_cluster\(\[(?P<cols>[^\]]*)\]\)")
QUOTED = re.compile(r"'([^']*)'")
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)


@cache
def partition_defaults() -> tuple[str, str]:
    """pf_bq_partition's default data_type and granularity, read from the macro itself."""
    macro = (DBT / "macros" / "bigquery.sql").read_text()
    match = re.search(
        r"macro pf_bq_partition\(field, data_type='(\w+)', granularity='(\w+)'\)", macro
    )
    assert match, "pf_bq_partition's signature changed: update this test and the Terraform map"
    return match[1], match[2]


def dbt_design() -> dict[str, dict[str, list[str]]]:
    """Partition and cluster of every model that sets them, from its `config(...)` call."""
    data_type, granularity = partition_defaults()
    design: dict[str, dict[str, list[str]]] = {}
    for sql in sorted((DBT / "models").rglob("*.sql")):
        text = sql.read_text()
        config = CONFIG_CALL.search(text)
        if not config or "pf_bq_partition" not in config["body"]:
            # a model may not set them anywhere else (outside Jinja comments)
            assert "pf_bq_" not in JINJA_COMMENT.sub("", text), sql
            continue
        partition = PARTITION.search(config["body"])
        cluster = CLUSTER.search(config["body"])
        assert partition and cluster, sql
        positional, keywords = [], {}
        for arg in [a.strip() for a in partition["args"].split(",") if a.strip()]:
            if "=" in arg:
                key, value = arg.split("=", 1)
                keywords[key.strip()] = QUOTED.findall(value)[0]
            else:
                positional.append(QUOTED.findall(arg)[0])
        values = dict(zip(["field", "data_type", "granularity"], positional, strict=False))
        values = {"data_type": data_type, "granularity": granularity} | values | keywords
        design[sql.stem] = {
            "partition": [values["field"], values["data_type"], values["granularity"]],
            "cluster": QUOTED.findall(cluster["cols"]),
            "layer": [sql.relative_to(DBT / "models").parts[0]],
        }
    return design


def bronze_sources() -> list[dict[str, Any]]:
    sources = yaml.safe_load((DBT / "models" / "bronze" / "sources.yml").read_text())
    (bronze,) = [s for s in sources["sources"] if s["name"] == "bronze"]
    return bronze["tables"]


def test_bigquery_design_matches_dbt_models() -> None:
    """The partitioning and clustering restated in modules/bigquery are the models' own: dbt
    owns those tables, and a reviewer reading the Terraform must not be told otherwise."""
    local = locals_of(MODULES / "bigquery" / "main.tf")
    design = dbt_design()
    assert len(design) >= 20, "the config parser found too few models"
    silver = {m: d for m, d in design.items() if d["layer"] == ["silver"]}
    gold = {m: d for m, d in design.items() if d["layer"] == ["gold"]}
    assert set(silver) | set(gold) == set(design), "a partitioned model outside silver/gold"
    # silver: one model per bronze table, all with the one silver design
    bronze_tables = {t["name"] for t in bronze_sources()}
    assert set(silver) == {f"silver_{t}" for t in bronze_tables}
    for model, d in silver.items():
        assert d["partition"] == local["dbt_silver_design"]["partition"], model
        assert d["cluster"] == local["dbt_silver_design"]["cluster"], model
    # gold: the same models, each with the same partition and cluster
    terraform_gold = local["dbt_gold_design"]
    assert set(gold) == set(terraform_gold), (
        f"in dbt only: {set(gold) - set(terraform_gold)}; "
        f"in Terraform only: {set(terraform_gold) - set(gold)}"
    )
    for model, d in gold.items():
        assert d["partition"] == terraform_gold[model]["partition"], model
        assert d["cluster"] == terraform_gold[model]["cluster"], model


def test_bronze_tables_match_the_dbt_sources_and_columns() -> None:
    """The Terraform-owned bronze tables are the dbt `bronze` source tables, with the columns of
    `pf_bronze_columns()` in BigQuery types, partitioned by ingest day as the lake is."""
    path = MODULES / "bigquery" / "main.tf"
    local = locals_of(path)
    sources = bronze_sources()
    assert local["bronze_event_types"] == [t["meta"]["event_type"] for t in sources]
    assert {t.replace(".", "_") for t in local["bronze_event_types"]} == {
        t["name"] for t in sources
    }
    macro = (DBT / "macros" / "bronze.sql").read_text()
    body = macro[macro.index("macro pf_bronze_columns()") :]
    body = body[: body.index("endmacro")]
    columns = re.findall(r"\('(\w+)', dbt\.type_(\w+)\(\)\)", body)
    assert columns, "pf_bronze_columns() not found"
    bigquery_type = {
        "string": "STRING",
        "int": "INT64",
        "bigint": "INT64",
        "timestamp": "TIMESTAMP",
    }
    assert [(c["name"], c["type"]) for c in local["bronze_columns"]] == [
        (name, bigquery_type[t]) for name, t in columns
    ]
    table = resources(path, "google_bigquery_table")["bronze"]
    assert one(table["time_partitioning"]) == {"type": "DAY", "field": "ingest_time"}
    # the datasets are dbt's: <prefix>_<layer>
    dataset = resources(path, "google_bigquery_dataset")["layer"]
    assert dataset["dataset_id"] == "${var.dataset_prefix}_${each.key}"
    assert dataset["delete_contents_on_destroy"] is False
    assert "default_table_expiration_ms" not in dataset
    assert "default_partition_expiration_ms" not in dataset
    assert "target.schema ~ '_bronze'" in (DBT / "models" / "bronze" / "sources.yml").read_text()


def test_bronze_tables_are_the_ones_the_loader_would_create() -> None:
    """The BigQuery bronze loader creates missing tables itself (`_ensure_tables`); the ones
    Terraform creates first must be the same, or a load job (`CREATE_NEVER`, fixed schema,
    partitioning and clustering) fails against them."""
    loader = pytest.importorskip("pharmaflow.warehouse.load_bigquery")
    path = MODULES / "bigquery" / "main.tf"
    local = locals_of(path)
    table = resources(path, "google_bigquery_table")["bronze"]
    assert table["clustering"] == loader.CLUSTERING_FIELDS
    assert one(table["time_partitioning"])["field"] == loader.PARTITION_FIELD
    assert [c["name"] for c in local["bronze_columns"]] == [n for n, _ in loader.BRONZE_COLUMNS]
    assert all(c["mode"] == "NULLABLE" for c in local["bronze_columns"])  # as the loader's
    assert set(re.findall(r'"(\w+)"', local["layers"])) == set(loader.LAYERS)


# --- documentation ----------------------------------------------------------------------------


def load_table_script() -> Any:
    spec = importlib.util.spec_from_file_location("variables_table", TF / "variables_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_list_every_variable() -> None:
    """docs/deploy-gcp.md holds the generated table, current: every variable, as declared."""
    script = load_table_script()
    doc = (REPO / "docs" / "deploy-gcp.md").read_text()
    committed = script.documented(doc)
    assert committed, "docs/deploy-gcp.md has no generated variables table"
    assert committed == script.block(), (
        "the variables table in docs/deploy-gcp.md is stale: run "
        "`.venv/bin/python deploy/terraform/variables_table.py --write`"
    )
    listed = set(re.findall(r"^\| ([\w/]+) \| `(\w+)` \|", committed, re.M))
    declared = {
        (str(p.parent.relative_to(TF)), name)
        for p in TF.rglob("variables.tf")
        for name in blocks(p, "variable")
    }
    assert listed == declared
