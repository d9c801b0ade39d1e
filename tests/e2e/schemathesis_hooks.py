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
# The caller deleting its own account: sent with a token of no one (a 401).
OWN_ACCOUNT = ("/api/v1/auth/me", "DELETE")
# Ending every session of a user leaves their (now empty) list of sessions, which the stateful
# phase's use-after-free check reads as a deleted resource still there. In that phase the list
# read is the caller's own (a real, non-empty list); the other phases and tests/api read others'.
SESSION_LIST = (f"{ONE_USER}/sessions", "GET")
NOBODY = "00000000-0000-4000-8000-000000000000"


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    operation = (case.operation.path, case.method.upper())
    if operation in SPARED and str((case.path_parameters or {}).get("user_id")) == CALLER_ID:
        case.path_parameters = {**(case.path_parameters or {}), "user_id": NOBODY}
    if operation == SESSION_LIST and case.meta is not None and case.meta.phase.name == "stateful":
        case.path_parameters = {**(case.path_parameters or {}), "user_id": CALLER_ID}
    if operation == OWN_ACCOUNT:
        # A token of no one in its place: the run's configured credentials are not added
        # where the case names the header already.
        case.headers = {**(case.headers or {}), "Authorization": "Bearer spared"}
