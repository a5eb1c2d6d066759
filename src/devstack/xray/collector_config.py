"""The SSE image's collector config (`docker/sse/collector-config.yaml`), as the devstack reads it.

The local OTLP receiver stands in for the ADOT collector, so it indexes exactly the attributes the
real `awsxray` exporter is configured to index: one list, in one file.

Example:
    >>> "session_id" in load_indexed_attributes()
    True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from devstack.stack import REPO_ROOT

COLLECTOR_CONFIG = REPO_ROOT / "docker" / "sse" / "collector-config.yaml"


class CollectorConfigError(ValueError):
    """The collector config lacks what the devstack (and the real collector) needs."""


def load_collector_config(path: Path = COLLECTOR_CONFIG) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise CollectorConfigError(f"{path}: not a YAML mapping")
    return config


@cache
def load_indexed_attributes(path: Path = COLLECTOR_CONFIG) -> frozenset[str]:
    """The `awsxray` exporter's `indexed_attributes` of the collector config."""
    exporter = (load_collector_config(path).get("exporters") or {}).get("awsxray")
    if not isinstance(exporter, dict):
        raise CollectorConfigError(f"{path}: no awsxray exporter settings")
    attributes = exporter.get("indexed_attributes")
    if not isinstance(attributes, list) or not all(isinstance(name, str) and name for name in attributes):
        raise CollectorConfigError(f"{path}: awsxray.indexed_attributes must be a list of attribute names")
    return frozenset(attributes)
