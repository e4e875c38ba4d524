"""The Grafana files of deploy/monitoring: the provisioning parses, and every query of the
dashboard names metrics that the processes really export."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

import bot.metrics
import trainer.metrics
import worker.metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
GRAFANA = MONITORING / "grafana"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name the emobot metrics can have, suffixes included."""
    assert bot.metrics and trainer.metrics and worker.metrics  # imported: registered
    families: list[Metric] = [*REGISTRY.collect(), *worker.metrics.QueueCollector(None).describe()]
    return {
        family.name + suffix
        for family in families
        if family.name.startswith("emobot_")
        for suffix in SUFFIXES[family.type]
    }


def test_the_dashboard_queries_metrics_the_processes_export() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "emobot.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bemobot_\w+", expr)}
    exported = exported_names()
    assert used - exported == set()
    # What the issue asks to see: queue depth, latency, throughput, batch size, errors.
    for needed in (
        "emobot_queue_depth",
        "emobot_worker_request_duration_seconds_bucket",
        "emobot_worker_requests_total",
        "emobot_worker_batch_size_sum",
        "emobot_worker_errors_total",
    ):
        assert needed in used
    # Panels fit the 24-column grid and query the provisioned data source.
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for panel in panels:
        assert panel["datasource"]["uid"] == uid
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_grafana_loads_the_dashboards_folder_it_is_given() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/emobot.yml").read_text())
    compose = yaml.safe_load((MONITORING.parents[1] / "docker-compose.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert (
        mounts["./deploy/monitoring/grafana/dashboards"]
        == provider["providers"][0]["options"]["path"]
    )
