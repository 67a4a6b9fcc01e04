"""The manifest blob against Azurite: blocks committed in export order, a retried batch never listed twice."""

from __future__ import annotations

import hashlib

from shared.export.manifest import Digest, Manifest, block_id, line

OPERATION = "00112233445566778899aabbccddeeff"


def lines(prefix: str, count: int) -> list[str]:
    return [line(bytes([n]) * 32, f"results/1.2/1.2.3/{prefix}.{n}.dcm") for n in range(count)]


def text(destination) -> str:
    return destination.container_client().download_blob(f"{OPERATION}/manifest-sha256.txt").readall().decode()


def test_blocks_are_committed_in_export_order_whatever_order_batches_finish_in(destination):
    manifest = Manifest(destination.container_client(), OPERATION)
    first, second, third = lines("a", 3), lines("b", 2), lines("c", 4)
    manifest.stage(block_id(10, 0), third)  # generation 10 comes after generation 9, not before it
    manifest.stage(block_id(9, 1), second)
    manifest.stage(block_id(9, 0), first)

    manifest.commit()

    assert text(destination) == "".join(first + second + third)


def test_a_retried_batch_replaces_its_block_and_a_repeated_commit_changes_nothing(destination):
    manifest = Manifest(destination.container_client(), OPERATION)
    manifest.stage(block_id(1, 0), lines("a", 3))
    manifest.stage(block_id(1, 1), lines("b", 2)[:1])  # an attempt that failed after staging
    manifest.stage(block_id(1, 1), lines("b", 2))  # its retry
    manifest.commit()
    manifest.commit()  # the commit activity run again after a crash

    assert text(destination) == "".join(lines("a", 3) + lines("b", 2))
    assert len(text(destination).splitlines()) == 5


def test_the_commit_returns_the_digest_and_size_of_what_it_committed(destination):
    manifest = Manifest(destination.container_client(), OPERATION)
    manifest.stage(block_id(1, 0), lines("a", 3))
    committed = manifest.commit()
    assert committed == Digest(hashlib.sha256(text(destination).encode()).hexdigest(), len(text(destination)))


def test_a_failed_export_commits_only_the_generations_before_the_one_that_failed(destination):
    """Its counts are those of the generations that completed; the manifest lists the same files."""
    manifest = Manifest(destination.container_client(), OPERATION)
    manifest.stage(block_id(1, 0), lines("a", 3))
    manifest.stage(block_id(2, 0), lines("b", 2))  # the failed generation's finished batch
    manifest.commit(before_generation=2)
    assert text(destination) == "".join(lines("a", 3))
    manifest.stage(block_id(2, 0), lines("b", 2))  # retried in place: the generation runs again
    manifest.commit()
    assert text(destination) == "".join(lines("a", 3) + lines("b", 2))


def test_an_export_of_nothing_has_an_empty_manifest(destination):
    manifest = Manifest(destination.container_client(), OPERATION)
    manifest.stage(block_id(1, 0), [])  # a batch whose files were all skipped stages nothing
    manifest.commit()
    assert text(destination) == ""


def test_a_line_is_sha256sum_format():
    assert line(bytes(range(32)), "results/1/2/3.dcm") == (
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  results/1/2/3.dcm\n")
