"""security.signing's batch verification: the worker processes give the same answers, in
the same order, as one process (a wrong signature among thousands is found where it is)."""

from __future__ import annotations

import random

import pytest

from govtui.security import signing


def _items(count: int, bad: set[int]) -> list[tuple[bytes, bytes, bytes]]:
    pairs = [signing.generate() for _ in range(3)]
    raws = [signing.raw_public(signing.load_public(p.public_pem)) for p in pairs]
    out = []
    for number in range(count):
        which = number % 3
        data = f"statement {number}".encode()
        signature = signing.sign(pairs[which].private_b64, data)
        if number in bad:
            data += b"!"  # the statement changed after signing
        out.append((raws[which], data, signature))
    return out


def test_workers_find_each_bad_signature_in_place() -> None:
    count = signing.PARALLEL_MIN + 17
    bad = set(random.Random(3).sample(range(count), 5)) | {0, count - 1}
    items = _items(count, bad)
    with signing.Verifier() as verifier:
        if verifier.workers < 2:
            pytest.skip("one core: no worker processes to compare with")
        parallel = verifier.verify_many(items)
        assert verifier._pool is not None, "the batch was big enough for workers"
        again = verifier.verify_many(items)  # the same workers, reused
    assert parallel == again == [n not in bad for n in range(count)]


def test_a_small_batch_stays_in_this_process() -> None:
    items = _items(10, {4})
    with signing.Verifier() as verifier:
        assert verifier.verify_many(items) == [n != 4 for n in range(10)]
        assert verifier._pool is None
