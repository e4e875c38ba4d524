"""Deployment files: docker-compose.yml validates, .env.example documents every setting."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from emobot.settings import Settings
from tests.conftest import missing_tool

ROOT = Path(__file__).resolve().parents[2]
MONITORING = {"prometheus", "grafana"}


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) or Debian's `docker-compose` (v1.29); both read the file."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    missing_tool("neither `docker compose` nor `docker-compose` is installed (.ci/run installs it)")


def compose_config(
    tmp_path: Path, env_lines: str, *profiles: str
) -> subprocess.CompletedProcess[str]:
    """`compose config` in a copy of the deployment files, with `.env` from .env.example."""
    for name in ("docker-compose.yml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text() + env_lines)
    selected = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [*compose_command(), *selected, "-f", str(tmp_path / "docker-compose.yml"), "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_compose_config_is_valid_and_wires_the_services(tmp_path: Path) -> None:
    result = compose_config(tmp_path, "BOT_TOKEN=123:abc\nADMIN_IDS=42\n")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    # Compose v1 lists the services of every profile, v2 those of the active ones only.
    assert set(services) - MONITORING == {
        "postgres",
        "minio",
        "minio-bucket",
        "migrate",
        "bot",
        "worker",
        "trainer",
    }
    for name in ("bot", "worker", "trainer", "migrate"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"] == ("postgresql+asyncpg://emobot:change-me@postgres:5432/emobot")
        assert env["BLOB_STORE_URL"] == "s3://emobot"
        assert env["BOT_TOKEN"] == "123:abc"
        # Settings accepts what compose hands the processes.
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    assert services["worker"]["command"][-1] == "worker"
    # Scalable: no fixed container name, no host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["minio"]
    assert {"pgdata", "miniodata"} <= set(config["volumes"])


def test_compose_monitoring_profile_scrapes_and_health_checks_every_process(
    tmp_path: Path,
) -> None:
    result = compose_config(tmp_path, "BOT_TOKEN=123:abc\n", "monitoring")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) >= MONITORING
    for name in MONITORING:
        assert services[name]["profiles"] == ["monitoring"]  # not started without the profile
        for volume in services[name]["volumes"]:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith(str(tmp_path)):  # a file of the repo, bind-mounted
                assert (ROOT / Path(source).relative_to(tmp_path)).exists(), source
    for name in ("bot", "worker", "trainer"):
        port = services[name]["environment"]["METRICS_PORT"]
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in test
    assert "healthcheck" not in services["migrate"]  # one-shot: nothing to probe
    scraped = yaml.safe_load((ROOT / "deploy/monitoring/prometheus.yml").read_text())
    targets = {
        (job["job_name"], name, sd["port"])
        for job in scraped["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    assert targets == {
        (name, name, int(services[name]["environment"]["METRICS_PORT"]))
        for name in ("bot", "worker", "trainer")
    }


def test_compose_config_names_a_missing_bot_token(tmp_path: Path) -> None:
    result = compose_config(tmp_path, "")
    assert result.returncode != 0
    assert "BOT_TOKEN" in result.stderr


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
