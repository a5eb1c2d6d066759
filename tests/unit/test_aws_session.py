"""The SSE function's two botocore clients come from one session (lib.aws_session).

A client made from a second session loads botocore's endpoint data, service model and endpoint rules
again: ~70 ms of CPU once per execution environment, 100 environments at once when 100 viewers
start (benchmarks/RESULTS.md, section 5). botocore keeps its session's loader on every client it
makes (`BaseClient._loader`), so one loader means one session's loaded data.
"""

from __future__ import annotations

import pytest

from devstack.aws.moto_server import MotoServer
from lambdas.sse_streaming.feed import dynamodb_client
from lib.aws_session import botocore_session
from lib.metrics import cloudwatch_client


@pytest.mark.req("FR-007")
def test_the_feed_and_the_metrics_clients_share_the_environments_one_botocore_session(moto_server: MotoServer) -> None:
    # moto_server: the clients are cached for the process, so they are made against the tests' moto
    loader = botocore_session().get_component("data_loader")
    assert dynamodb_client()._loader is loader  # type: ignore[attr-defined]
    assert cloudwatch_client()._loader is loader  # type: ignore[attr-defined]
    assert dynamodb_client().meta.service_model.service_name == "dynamodb"
    assert cloudwatch_client().meta.service_model.service_name == "cloudwatch"
