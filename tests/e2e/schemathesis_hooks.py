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
NOBODY = "00000000-0000-4000-8000-000000000000"


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    if (
        case.operation.path == ONE_USER
        and case.method.upper() in {"PATCH", "DELETE"}
        and str((case.path_parameters or {}).get("user_id")) == CALLER_ID
    ):
        case.path_parameters = {**(case.path_parameters or {}), "user_id": NOBODY}
