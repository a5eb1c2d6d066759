"""Who is calling: the Cognito user API Gateway's authorizer let through, from the proxy event.

A REST API method with a `COGNITO_USER_POOLS` authorizer passes the verified ID token's claims to a
Lambda proxy integration as `requestContext.authorizer.claims`, every value a string
(`"email_verified": "true"`):
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-enable-cognito-user-pool.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
The authorizer has already checked signature, issuer, audience and expiry; the function only reads
the claims. No claims means the method has no authorizer (a deployment error) or the function was
invoked around API Gateway: 401, never a rule of "nobody".

Example:
    >>> caller_from_claims({"sub": "7d1e", "email": "ann@example.com", "email_verified": "true"})
    Caller(sub='7d1e', email='ann@example.com', email_verified=True)
    >>> caller_from_claims({}) is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lib.alerts import EMAIL_PATTERN, MAX_EMAIL_CHARS, OWNER_PATTERN


@dataclass(frozen=True)
class Caller:
    sub: str             # the user's stable id: a rule's owner
    email: str | None    # the user's address, when the pool has one
    email_verified: bool

    @property
    def verified_email(self) -> str | None:
        """The address a rule may mail: only one the user proved they receive."""
        return self.email if self.email_verified else None


def caller_from_claims(claims: Mapping[str, Any]) -> Caller | None:
    """The caller of a Cognito-authorized request, or None when the claims name nobody usable."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not re.match(OWNER_PATTERN, sub):
        return None
    email = claims.get("email")
    usable = isinstance(email, str) and len(email) <= MAX_EMAIL_CHARS and re.match(EMAIL_PATTERN, email)
    # API Gateway passes claims as strings; a JSON boolean is accepted too (same meaning).
    verified = str(claims.get("email_verified", "false")).lower() == "true"
    return Caller(sub=sub, email=email if usable else None, email_verified=bool(usable) and verified)
