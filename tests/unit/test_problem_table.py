"""The one problem table: every domain error answers with a status and code of its own."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import bastion
from bastion.app import problem_table
from bastion.core.email_address import InvalidEmailAddress
from bastion.core.errors import BastionError
from bastion.http.errors import ProblemType


def every_error_class(base: type[BastionError]) -> Iterator[type[BastionError]]:
    for subclass in base.__subclasses__():
        yield subclass
        yield from every_error_class(subclass)


def test_every_domain_error_has_a_problem_row_of_its_own() -> None:
    for module in pkgutil.walk_packages(bastion.__path__, "bastion."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    table = problem_table()
    generic = table.kind(BastionError)
    unmapped = [e.__qualname__ for e in every_error_class(BastionError) if table.kind(e) is generic]
    assert unmapped == []


def test_an_invalid_address_met_by_a_use_case_answers_as_one_refused_at_the_edge() -> None:
    assert problem_table().kind(InvalidEmailAddress) == ProblemType(
        422, "VALIDATION_ERROR", "Validation error"
    )
