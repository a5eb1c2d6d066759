"""Alert rules in the browser (issue 21): the page signs in against the stack's Cognito (moto's, through
the page's config.json), creates a rule of the signed-in user, sees the live stream deliver a score of
the rule's ticker, and deletes the rule; the API saw the ID token on the alert routes only."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from playwright.sync_api import expect

from devstack.seed import DEMO_USER

from .conftest import RunningStack, Tab

LOAD_TIMEOUT_MS = 30_000
STREAM_TIMEOUT_MS = 60_000


@pytest.mark.req("FR-016", "SC-011")
def test_a_user_signs_in_creates_a_rule_sees_its_ticker_live_and_deletes_it(tab: Tab, e2e_stack: RunningStack) -> None:
    page = tab.page
    username, password = DEMO_USER
    expect(page.get_by_test_id("ticker-card-NVDA")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_test_id("alert-form")).to_be_hidden()
    assert not [r for r in tab.api_requests() if "/api/v2/alerts" in r.url]  # signed out: no rules asked for

    page.get_by_test_id("sign-in-username").fill(username)
    page.get_by_test_id("sign-in-password").fill("wrong-password-1")
    page.get_by_test_id("sign-in-submit").click()
    expect(page.get_by_test_id("alert-error")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_test_id("alert-error")).to_contain_text("Incorrect username or password")
    expect(page.get_by_test_id("alert-form")).to_be_hidden()

    page.get_by_test_id("sign-in-password").fill(password)
    page.get_by_test_id("sign-in-submit").click()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(username, timeout=LOAD_TIMEOUT_MS)
    # the seeded rule of the demo user
    expect(page.get_by_test_id("alert-item")).to_have_count(1, timeout=LOAD_TIMEOUT_MS)

    page.get_by_test_id("alert-ticker").select_option("NVDA")
    page.get_by_test_id("alert-direction").select_option("above")
    page.get_by_test_id("alert-threshold").fill("-1")
    created_at = time.time()
    page.get_by_test_id("alert-submit").click()
    expect(page.get_by_test_id("alert-item")).to_have_count(2, timeout=LOAD_TIMEOUT_MS)
    new_item = page.get_by_test_id("alert-item").nth(1)
    expect(new_item).to_contain_text("NVDA")
    expect(new_item).to_contain_text(username)  # the verified address of the token, not one the page sent
    alert_id = new_item.get_attribute("data-alert-id")
    assert alert_id

    post = next(r for r in tab.api_requests(since=created_at)
                if r.method == "POST" and r.url.endswith("/api/v2/alerts"))
    assert post.headers.get("authorization", "").count(".") == 2  # the ID token, as the authorizer reads it
    public = [r for r in tab.api_requests() if "/api/v2/alerts" not in r.url]
    assert public and all("authorization" not in r.headers for r in public)

    # The live stream delivers a score of the rule's ticker (ingestion runs every 3 s, headlines every 2 s).
    expect(page.locator('[data-testid="feed-item"][data-ticker="NVDA"]').first).to_be_visible(
        timeout=STREAM_TIMEOUT_MS)
    assert tab.api_requests(stream=True), "the page streams"

    new_item.get_by_test_id("alert-delete").click()
    expect(page.locator(f'[data-alert-id="{alert_id}"]')).to_have_count(0, timeout=LOAD_TIMEOUT_MS)
    config = boto3.resource("dynamodb", endpoint_url=e2e_stack.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    tables = [t.name for t in config.tables.all() if t.name.endswith("-config")]
    rows = config.Table(tables[0]).scan(ConsistentRead=True)["Items"]
    assert alert_id not in json.dumps(rows, default=str)  # deleted, not hidden
