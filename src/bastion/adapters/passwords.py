"""Password hashing: Argon2id, with bcrypt accepted for imported users; off the event loop."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import bcrypt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from bastion.passwords.ports import Verification

T = TypeVar("T")
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    time_cost: int = 2
    memory_cost: int = 19456  # KiB: 19 MiB, OWASP's recommendation
    parallelism: int = 1


class Argon2PasswordHasher:
    """``PasswordHasher`` in a dedicated thread pool; argon2 and bcrypt release the GIL."""

    def __init__(
        self,
        parameters: Argon2Parameters,
        *,
        threads: int,
        on_hash_time: Callable[[float], None] | None = None,
    ) -> None:
        self._argon2 = Argon2Hasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bastion-hash")
        self._on_hash_time = on_hash_time
        # Verifying an unknown user's password against this costs what a real check costs.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._run(self._argon2.hash, _encode(password))

    async def verify(self, password_hash: str, password: str) -> Verification:
        return await self._run(self._verify, password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real verification, for callers that must not reveal a miss."""
        await self.verify(self._dummy_hash, password)

    def _verify(self, password_hash: str, password: str) -> Verification:
        if password_hash.startswith(BCRYPT_PREFIXES):
            # bcrypt ignores bytes past 72; hashes imported from other systems work the same way.
            valid = bcrypt.checkpw(_encode(password)[:72], password_hash.encode())
            return Verification(valid=valid, needs_rehash=valid)
        try:
            self._argon2.verify(password_hash, _encode(password))
        except (VerificationError, InvalidHashError):
            return Verification(valid=False)
        return Verification(valid=True, needs_rehash=self._argon2.check_needs_rehash(password_hash))

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        started = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            if self._on_hash_time is not None:
                self._on_hash_time(time.perf_counter() - started)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _encode(password: str) -> bytes:
    # JSON may carry lone surrogates; they must hash, not crash.
    return password.encode("utf-8", "surrogatepass")
