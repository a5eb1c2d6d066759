"""No way around the edge (FR-035): what each origin requires of a request, and what the edge adds.

- **API Gateway** answers only requests that carry `edge.origin_verify_header` (stack map) with the
  secret CloudFront adds as an origin custom header (`modules/edge/cloudfront.tf`); a regional WAF
  web ACL on the stage blocks every other request with 403. WAF inspects a request before API
  Gateway's own access controls and before the stage runs:
  https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html
  so a blocked request reaches no integration; whether the stage still writes an X-Ray segment for it
  is not documented: the devstack writes none, and the refused request reaches no function.
  WAF's default block response is 403:
  https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-action.html
- **The SSE Function URL** (`AWS_IAM`) answers only SigV4-signed requests; CloudFront signs them
  with origin access control for Lambda, `signing_behavior = "always"` (`modules/edge/sse_origin.tf`),
  which replaces a viewer's own `Authorization` header:
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-lambda.html
  https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html
  Lambda refuses an unsigned or badly signed request with 403 before the function runs (no
  invocation, no trace). The body `{"Message":"Forbidden"}` with `x-amzn-ErrorType:
  AccessDeniedException` is what Lambda's front end is observed to send; AWS does not document the
  body, so only the status is a contract.

The secret is random per run (`secrets.token_urlsafe`), as Terraform generates one per environment;
the signing credentials are the devstack's fake ones (the signature is real SigV4, checked by
recomputing it with botocore).

Example:
    >>> access = OriginAccess.from_stack()
    >>> access.api_allows(access.to_api([("Accept", "*/*")]))
    True
    >>> access.api_allows([("X-Origin-Verify", "guess")])
    False
    >>> signed = access.sign_for_function_url("GET", "/api/v2/stream", "", [("Accept", "text/event-stream")])
    >>> access.function_url_allows("GET", "/api/v2/stream", "", signed)
    True
    >>> access.function_url_allows("GET", "/api/v2/stream", "", [])
    False
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.aws.moto_server import REGION
from devstack.stack import load_stack

# The Function URL's host name (https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html):
# the signature covers it, so the edge and the URL must agree on one.
FUNCTION_URL_HOST = f"devstacklocalsse0url0id0000000000.lambda-url.{REGION}.on.aws"
SIGNING_SERVICE = "lambda"
FORBIDDEN_BODY = json.dumps({"Message": "Forbidden"}).encode()
FORBIDDEN_HEADERS = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException")]
WAF_FORBIDDEN_BODY = json.dumps({"message": "Forbidden"}).encode()
_AUTHORIZATION = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,]+), ?SignedHeaders=(?P<signed>[^,]+), "
                            r"?Signature=(?P<signature>[0-9a-f]{64})$")


def _joined(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Repeated headers as SigV4 canonicalises them: one name, values joined by commas."""
    joined: dict[str, list[str]] = {}
    for key, value in headers:
        joined.setdefault(key.lower(), []).append(value)
    return {key: ",".join(values) for key, values in joined.items()}


def _credentials() -> Credentials:
    return Credentials("AKIADEVSTACKEDGE0000", "devstack-cloudfront-oac-signing-key")


@dataclass(frozen=True)
class OriginAccess:
    """The origin-verify header and secret (API), and the OAC signing credentials (Function URL)."""

    header_name: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @classmethod
    def from_stack(cls) -> OriginAccess:
        return cls(header_name=str(load_stack().raw["edge"]["origin_verify_header"]))

    # API Gateway + WAF ----------------------------------------------------------------------------
    def to_api(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers CloudFront sends the API origin: a client's own copy of the header is replaced."""
        return [(k, v) for k, v in headers if k.lower() != self.header_name.lower()] + [(self.header_name, self.secret)]

    def api_allows(self, headers: list[tuple[str, str]]) -> bool:
        """The web ACL's rule: exactly one header of that name, equal to the secret."""
        values = [v for k, v in headers if k.lower() == self.header_name.lower()]
        return len(values) == 1 and hmac.compare_digest(values[0].encode(), self.secret.encode())

    # Function URL + origin access control -----------------------------------------------------------
    def sign_for_function_url(self, method: str, path: str, query: str,
                              headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers CloudFront sends the Function URL: SigV4-signed, the viewer's Authorization replaced."""
        # CloudFront sends the origin's own host name (a Function URL origin never gets the viewer's Host).
        kept = [(k, v) for k, v in headers
                if k.lower() not in ("authorization", "x-amz-date", "x-amz-security-token", "host")]
        kept.append(("Host", FUNCTION_URL_HOST))
        request = AWSRequest(method=method, url=self._url(path, query), headers=_joined(kept), data=b"")
        SigV4Auth(_credentials(), SIGNING_SERVICE, REGION).add_auth(request)
        signature = [("X-Amz-Date", request.headers["X-Amz-Date"]), ("Authorization", request.headers["Authorization"])]
        return kept + signature

    def function_url_allows(self, method: str, path: str, query: str, headers: list[tuple[str, str]]) -> bool:
        """Lambda's check of an AWS_IAM Function URL request: a SigV4 signature by the allowed principal."""
        lowered: dict[str, list[str]] = {}
        for key, value in headers:
            lowered.setdefault(key.lower(), []).append(value)
        authorization = lowered.get("authorization", [])
        stamp = lowered.get("x-amz-date", [])
        match = _AUTHORIZATION.match(authorization[0]) if len(authorization) == 1 else None
        if match is None or len(stamp) != 1:
            return False
        credentials = _credentials()
        if not match["credential"].startswith(f"{credentials.access_key}/"):
            return False
        signed_names = match["signed"].split(";")
        signed = [(name, ",".join(lowered[name])) for name in signed_names if name in lowered]
        request = AWSRequest(method=method, url=self._url(path, query), headers=dict(signed), data=b"")
        request.context["timestamp"] = stamp[0]
        auth = SigV4Auth(credentials, SIGNING_SERVICE, REGION)
        if auth.signed_headers(auth.headers_to_sign(request)) != match["signed"]:
            return False
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        return hmac.compare_digest(expected, match["signature"])

    @staticmethod
    def _url(path: str, query: str) -> str:
        return f"https://{FUNCTION_URL_HOST}{path}" + (f"?{query}" if query else "")
