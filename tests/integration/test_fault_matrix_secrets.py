"""No secret and no personal data in any recorded trace document, failure paths included (FR-028,
SC-011, FR-058): the news sources' API keys, the SendGrid key, the alert recipient's address.

The scan reads the `segments.jsonl` of a full `python -m devstack demo --faults` (every function,
the seven silent failure paths, a poison message): the demo is run into a temporary directory, or
its output is reused when `DEMO_OUTPUT_DIR` names one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.demo.news_alerts import SECOND_RECIPIENT
from devstack.fakes.news_sources import DEFAULT_API_KEYS
from devstack.fakes.sendgrid_sink import DEFAULT_API_KEY as SENDGRID_API_KEY
from devstack.seed import DEMO_ALERT, DEMO_USER
from devstack.stack import REPO_ROOT, SRC_ROOT
from devstack.xray.trace_reader import flatten

DEMO_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reused = os.environ.get("DEMO_OUTPUT_DIR")
    if reused:
        return Path(reused)
    directory = tmp_path_factory.mktemp("demo")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "OTEL_", "_X_AMZN"))}
    env.pop("LAMBDA_TASK_ROOT", None)
    env["PYTHONPATH"] = str(SRC_ROOT)
    finished = subprocess.run([sys.executable, "-m", "devstack", "demo", "--faults", "--sse-runtime", "process",
                               "--dir", str(directory)],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return directory


@pytest.mark.req("FR-028", "SC-011", "FR-058")
def test_no_recorded_document_holds_an_api_key_or_a_recipient_address(demo_output: Path) -> None:
    text = (demo_output / "traces" / "segments.jsonl").read_text()
    received = [json.loads(line) for line in text.splitlines()]
    documents = [flat for document in received for flat in flatten(document, document["trace_id"])]
    names = {document.get("name") for document in documents}
    # Not vacuous: the run fetched from both sources, mailed through SendGrid, and failed on purpose.
    assert "SendGrid" in names
    assert any("tiingo" in json.dumps(doc.get("http", {})) for doc in documents)
    assert any("company-news" in json.dumps(doc.get("http", {})) for doc in documents)
    assert sum(1 for doc in documents if doc.get("fault") or doc.get("error")) >= 7
    report = json.loads((demo_output / "demo-report.json").read_text())
    assert report["ok"] is True

    ticker, recipient = DEMO_ALERT[0], DEMO_USER[0]  # the demo user's rule mails the user's verified address
    secrets = {"tiingo key": DEFAULT_API_KEYS["tiingo"], "finnhub key": DEFAULT_API_KEYS["finnhub"],
               "sendgrid key": SENDGRID_API_KEY, "recipient": recipient, "second recipient": SECOND_RECIPIENT,
               "recipient's mailbox": recipient.split("@")[0] + "@", "bearer token": "Bearer "}
    leaked = {label: value for label, value in secrets.items() if value.lower() in text.lower()}
    assert leaked == {}
    assert ticker in text  # what may be recorded still is
