"""Schemathesis hooks for the admin run (loaded through SCHEMATHESIS_HOOKS).

The admin the run authenticates as is spared the admin API's changes to its own account: once
the fuzzer had unverified, demoted or deleted it, every later request would be a 401 and the
rest of the run would test nothing. What an admin may do to their own account is tested in
tests/api/test_admin.py.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from schemathesis import Case, HookContext

CALLER_ID = os.environ["FUZZ_ADMIN_ID"]
ONE_USER = "/api/v1/admin/users/{user_id}"
# The admin writes that would sign the caller out or take its account away.
SPARED = {
    (ONE_USER, "PATCH"),
    (ONE_USER, "DELETE"),
    (f"{ONE_USER}/sessions", "DELETE"),
    (f"{ONE_USER}/sessions/{{session_id}}", "DELETE"),
}
# The caller deleting its own account: sent without the caller's token (a 401).
OWN_ACCOUNT = ("/api/v1/auth/me", "DELETE")
NOBODY = "00000000-0000-4000-8000-000000000000"


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    operation = (case.operation.path, case.method.upper())
    if operation in SPARED and str((case.path_parameters or {}).get("user_id")) == CALLER_ID:
        case.path_parameters = {**(case.path_parameters or {}), "user_id": NOBODY}
    if operation == OWN_ACCOUNT:
        headers = {k: v for k, v in (kwargs.get("headers") or {}).items()}
        headers.pop("Authorization", None)
        headers.pop("authorization", None)
        kwargs["headers"] = headers
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
