from __future__ import annotations

from bastion.core.errors import Conflict


class LeaseHeld(Conflict):
    """Another holder has the task's lease: it is running the task now."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Another instance is running {name} right now.")
        self.name = name


class LeaseLost(Conflict):
    """The lease could not be renewed while the task ran, so the task was stopped."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} stopped: its lease could not be renewed.")
        self.name = name
