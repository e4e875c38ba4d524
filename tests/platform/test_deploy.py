"""Deployment files: docker-compose.yml validates, .env.example documents every setting."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from emobot.settings import Settings
from tests.conftest import missing_tool

ROOT = Path(__file__).resolve().parents[2]


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


def compose_config(tmp_path: Path, env_lines: str) -> subprocess.CompletedProcess[str]:
    """`compose config` in a copy of the deployment files, with `.env` from .env.example."""
    for name in ("docker-compose.yml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text() + env_lines)
    return subprocess.run(
        [*compose_command(), "-f", str(tmp_path / "docker-compose.yml"), "config"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip


def test_compose_config_is_valid_and_wires_the_services(tmp_path: Path) -> None:
    result = compose_config(tmp_path, "BOT_TOKEN=123:abc\nADMIN_IDS=42\n")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {
        "postgres", "minio", "minio-bucket", "migrate", "bot", "worker", "trainer"
    }  # fmt: skip
    for name in ("bot", "worker", "trainer", "migrate"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"] == (
            "postgresql+asyncpg://emobot:change-me@postgres:5432/emobot"
        )  # fmt: skip
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


def test_compose_config_names_a_missing_bot_token(tmp_path: Path) -> None:
    result = compose_config(tmp_path, "")
    assert result.returncode != 0
    assert "BOT_TOKEN" in result.stderr


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
