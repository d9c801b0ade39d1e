from __future__ import annotations

import time


class Clock:
    """The verifier's clock in tests: real time, moved forward at will."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FrozenClock(Clock):
    """Time that moves only when the test moves it: what a test counts in fractions of a second
    must not run out while the machine is busy elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.time()

    def __call__(self) -> float:
        return self.started + self.offset
