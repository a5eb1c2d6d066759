"""The execution environment's one botocore session, for the clients of code that needs no boto3.

Every client made from one session shares what the session has loaded (endpoint data, service
models, endpoint rules); a client made from a second session loads them again: ~70 ms of CPU at
its first call, once per execution environment (benchmarks/RESULTS.md, section 5: the CloudWatch
client on its own session 82-87 ms, on the DynamoDB client's 17 ms). A botocore session is what
boto3 wraps; `botocore.session.get_session()` makes a new one each call:
https://github.com/boto/botocore/blob/develop/botocore/session.py (`get_session`)

Example:
    >>> botocore_session() is botocore_session()
    True
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.session import Session


@cache
def botocore_session() -> Session:
    """Made at the first client's creation (botocore's import is deferred to it), then reused."""
    import botocore.session

    return botocore.session.get_session()
