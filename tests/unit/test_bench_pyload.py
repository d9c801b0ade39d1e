"""The benchmark's Python load generator: how it shares out TOTP users (each at most once per
step, so no two connections may hold the same one) and how passkeys travel to its processes."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from bench.pyload import FlowLoad, TotpPool, _jobs, _percentiles
from bench.webauthn_authenticator import (
    SoftwareAuthenticator,
    export_credential,
    import_credential,
)

OPTIONS = {
    "rp": {"id": "127.0.0.1", "name": "Bastion"},
    "user": {"id": "dXNlcg", "name": "u", "displayName": "u"},
    "challenge": "Y2hhbGxlbmdl",
}


def test_each_totp_user_belongs_to_one_connection_and_keeps_its_spent_step() -> None:
    pool = TotpPool(
        secrets={f"user{n}@example.org": f"SECRET{n}" for n in range(10)},
        last_step={"user3@example.org": 41},
    )
    load = FlowLoad("totp", "totp", concurrency=4, processes=2, password="pw", totp=pool)

    jobs = _jobs(load, "http://127.0.0.1:1", seconds=1, start_at=0.0)

    assert len(jobs) == 2
    connections = [users for job in jobs for users in job["connections"]]
    assert len(connections) == 4
    emails = [user["email"] for users in connections for user in users]
    assert sorted(emails) == sorted(pool.secrets)
    steps = {user["email"]: user["last_step"] for users in connections for user in users}
    assert steps["user3@example.org"] == 41
    assert steps["user0@example.org"] == -1


def test_password_connections_each_rotate_over_every_user_from_a_different_start() -> None:
    load = FlowLoad("pw", "password", concurrency=3, processes=1, emails=["a", "b", "c"])

    [job] = _jobs(load, "http://127.0.0.1:1", seconds=1, start_at=0.0)

    assert job["connections"] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_an_exported_credential_signs_as_the_original_in_another_process() -> None:
    for algorithm in ("ES256", "Ed25519"):
        authenticator = SoftwareAuthenticator(algorithm=algorithm, synced=True)
        authenticator.create(OPTIONS, "http://127.0.0.1")
        [original] = authenticator.credentials.values()

        copy = import_credential(export_credential(original))

        assert copy.credential_id == original.credential_id
        assert copy.user_handle == original.user_handle
        raw = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert copy.private_key.public_key().public_bytes(*raw) == (
            original.private_key.public_key().public_bytes(*raw)
        )


def test_percentiles_of_no_login_are_zero_and_of_some_are_taken_from_them() -> None:
    assert _percentiles([])["p95"] == 0.0
    latencies = [float(n) for n in range(1, 101)]
    assert _percentiles(latencies)["p50"] == 51.0
    assert _percentiles(latencies)["p99"] == 100.0
