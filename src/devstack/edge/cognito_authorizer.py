"""API Gateway's `COGNITO_USER_POOLS` authorizer, emulated for the devstack (against moto's Cognito).

What AWS does for a method with such an authorizer (REST API):
- the ID token comes in the `Authorization` header (the authorizer's identity source), as is;
  https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-enable-cognito-user-pool.html
- the token is checked against the user pool: signature (RS256, the pool's JWKS at
  `<issuer>/.well-known/jwks.json`), issuer (`https://cognito-idp.<region>.amazonaws.com/<pool id>`),
  expiry, and `token_use` (an ID token, as no OAuth scopes are configured on the method);
  https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html
- a missing or invalid token never reaches the integration: the `UNAUTHORIZED` gateway response,
  401 `{"message":"Unauthorized"}`;
  https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
- a valid one reaches it with the token's claims, every value as a string, in
  `requestContext.authorizer.claims`.

moto's server signs its tokens with one RSA key and serves the matching JWKS at
`<moto endpoint>/<pool id>/.well-known/jwks.json` (its issuer still names the AWS host, as AWS's does).
The JWKS is fetched once per authorizer (a pool's keys do not change while the stack runs).

Example (not run: needs moto's server and a user pool):
    >>> jwks = f"{moto.endpoint}/{pool_id}/.well-known/jwks.json"  # doctest: +SKIP
    >>> authorizer = CognitoAuthorizer(pool_id, jwks_url=jwks)   # doctest: +SKIP
    >>> authorizer.claims(id_token)["sub"]                       # doctest: +SKIP
    '5e4c...'
    >>> authorizer.claims("not-a-token") is None                 # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.request
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from devstack.aws.moto_server import REGION

log = logging.getLogger("devstack.edge.cognito_authorizer")

UNAUTHORIZED_BODY = b'{"message":"Unauthorized"}'
# The methods the authorizer guards in Terraform (modules/edge): every method of the two alert
# resources but OPTIONS (the CORS preflight, a MOCK integration without authorization).
GUARDED_PATHS = (re.compile(r"^/api/v2/alerts$"), re.compile(r"^/api/v2/alerts/[^/]+$"))
JWKS_TIMEOUT_S = 5


def issuer(user_pool_id: str, region: str = REGION) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def guards(method: str, path: str) -> bool:
    """Does a method with the Cognito authorizer answer this request (vs a public one)?"""
    return method.upper() != "OPTIONS" and any(pattern.match(path) for pattern in GUARDED_PATHS)


class CognitoAuthorizer:
    """Checks ID tokens of one user pool as API Gateway's Cognito authorizer does."""

    def __init__(self, user_pool_id: str, jwks_url: str, clock: Any = time.time):
        self.user_pool_id = user_pool_id
        self.issuer = issuer(user_pool_id)
        self._jwks_url = jwks_url
        self._clock = clock
        self._keys: KeySet | None = None

    def keys(self) -> KeySet:
        if self._keys is None:
            with urllib.request.urlopen(self._jwks_url, timeout=JWKS_TIMEOUT_S) as response:
                self._keys = KeySet.import_key_set(json.load(response))
        return self._keys

    def claims(self, authorization: str | None) -> dict[str, str] | None:
        """The token's claims as API Gateway passes them (strings), or None: answer 401."""
        if not authorization:
            return None
        try:
            token = jwt.decode(authorization.strip(), self.keys(), algorithms=["RS256"])
        except (JoseError, ValueError) as error:
            log.info("token rejected: %s", type(error).__name__)
            return None
        claims = token.claims
        expires = claims.get("exp")
        if claims.get("iss") != self.issuer or claims.get("token_use") != "id":
            return None
        if not isinstance(expires, int | float) or expires <= self._clock():
            return None
        return {name: _as_claim_string(value) for name, value in claims.items()}


def _as_claim_string(value: Any) -> str:
    """API Gateway hands claims to the integration as strings (`true`, not a JSON boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
