"""Verify Bastion access tokens in your own services.

```python
from bastion_verifier import Claims, Verifier

verifier = Verifier(issuer="https://auth.example.com", audience="bastion")
verifier.install(app)

@app.get("/tasks")
async def tasks(claims: Claims = Depends(verifier.require())) -> ...: ...
```
"""

from __future__ import annotations

from bastion_verifier.claims import Claims
from bastion_verifier.errors import (
    InsufficientAuthentication,
    InsufficientRole,
    InvalidToken,
    IssuerUnavailable,
    TokenExpired,
    TokenMissing,
    TokenRevoked,
    VerifierError,
)
from bastion_verifier.middleware import BearerAuthMiddleware
from bastion_verifier.verifier import Verifier

__all__ = [
    "BearerAuthMiddleware",
    "Claims",
    "InsufficientAuthentication",
    "InsufficientRole",
    "InvalidToken",
    "IssuerUnavailable",
    "TokenExpired",
    "TokenMissing",
    "TokenRevoked",
    "Verifier",
    "VerifierError",
]
