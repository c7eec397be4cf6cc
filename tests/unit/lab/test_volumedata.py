# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A lab volume's directory <-> block image."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.lab.longhorn.volumedata import (
    BLOCK_SIZE,
    VolumeDataError,
    dir_digest,
    dir_from_image,
    image_digest,
    image_from_dir,
    join_blocks,
    split_blocks,
)

VOLUME_SIZE = 8 * BLOCK_SIZE


def write(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    if mode is not None:
        os.chmod(path, mode)


def populate(root, order=("a", "b")):
    """The same content, created in the given order."""
    for part in order:
        if part == "a":
            write(os.path.join(root, "data", "app.db"), bytes(range(256)) * 4096)
            write(os.path.join(root, "data", "empty"), b"")
            write(os.path.join(root, "run.sh"), b"#!/bin/sh\necho hi\n", 0o700)
        else:
            write(os.path.join(root, "notes.txt"), "übung\n".encode())
            os.makedirs(os.path.join(root, "lost+found"), exist_ok=True)
            os.symlink("data/app.db", os.path.join(root, "current"))


def snapshot(root):
    """Everything that must survive a round trip: file bytes, link targets, executable bits, dirs."""
    seen = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(current, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                seen[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                seen[rel] = ("dir",)
            else:
                with open(full, "rb") as handle:
                    seen[rel] = ("file", handle.read(), bool(os.stat(full).st_mode & 0o100))
    return seen


def test_round_trip_replaces_directory_content(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    populate(str(source))
    write(str(target / "stale" / "old.txt"), b"must disappear")

    image = image_from_dir(str(source), VOLUME_SIZE)
    dir_from_image(image, str(target))

    assert snapshot(str(target)) == snapshot(str(source))
    assert not (target / "stale").exists()
    assert dir_digest(str(target)) == dir_digest(str(source))


def test_image_is_deterministic_across_creation_order_times_and_umask(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    populate(str(first), order=("a", "b"))
    old_umask = os.umask(0o077)
    try:
        populate(str(second), order=("b", "a"))
    finally:
        os.umask(old_umask)
    os.utime(str(second / "notes.txt"), (1, 1))

    image_one = image_from_dir(str(first), VOLUME_SIZE)
    image_two = image_from_dir(str(second), VOLUME_SIZE)

    assert hashlib.sha256(image_one).digest() == hashlib.sha256(image_two).digest()
    assert split_blocks(image_one) == split_blocks(image_two)


def test_image_is_whole_blocks_and_digest_matches_directory(tmp_path):
    populate(str(tmp_path))
    image = image_from_dir(str(tmp_path), VOLUME_SIZE)

    assert len(image) % BLOCK_SIZE == 0
    assert image_digest(image) == dir_digest(str(tmp_path))
    assert image_digest(image + bytes(BLOCK_SIZE)) == dir_digest(str(tmp_path))


def test_changed_content_changes_digest_and_only_later_blocks(tmp_path):
    write(str(tmp_path / "a" / "big.bin"), os.urandom(3 * BLOCK_SIZE))
    before = image_from_dir(str(tmp_path), VOLUME_SIZE)
    digest_before = dir_digest(str(tmp_path))
    write(str(tmp_path / "z.txt"), b"appended at the end of the sorted archive")
    after = image_from_dir(str(tmp_path), VOLUME_SIZE)

    assert dir_digest(str(tmp_path)) != digest_before
    blocks_before, blocks_after = dict(split_blocks(before)), dict(split_blocks(after))
    # The first block only holds big.bin's header and data, which did not change.
    assert blocks_before[0] == blocks_after[0]
    assert blocks_before != blocks_after


def test_content_larger_than_volume_is_refused(tmp_path):
    write(str(tmp_path / "big.bin"), os.urandom(BLOCK_SIZE + 1))
    with pytest.raises(VolumeDataError, match="more than the volume size"):
        image_from_dir(str(tmp_path), BLOCK_SIZE)


def test_empty_directory_is_an_all_zero_image(tmp_path):
    image = image_from_dir(str(tmp_path), VOLUME_SIZE)
    assert len(image) == BLOCK_SIZE
    assert split_blocks(image) == []

    target = tmp_path / "restored"
    write(str(target / "junk"), b"x")
    dir_from_image(bytes(VOLUME_SIZE), str(target))
    assert not os.listdir(str(target))


def test_split_blocks_skips_zero_blocks_and_join_restores():
    block_a = b"\x01" * BLOCK_SIZE
    block_c = bytes(BLOCK_SIZE - 1) + b"\x02"
    image = block_a + bytes(BLOCK_SIZE) + block_c + bytes(BLOCK_SIZE)

    blocks = split_blocks(image)

    assert blocks == [(0, block_a), (2 * BLOCK_SIZE, block_c)]
    assert join_blocks(blocks, len(image)) == image


def test_split_blocks_with_other_block_size():
    image = bytes(4096) + b"\x07" * 4096
    assert split_blocks(image, 4096) == [(4096, b"\x07" * 4096)]
    with pytest.raises(VolumeDataError):
        split_blocks(image + b"x", 4096)


def test_join_blocks_refuses_blocks_outside_the_image():
    with pytest.raises(VolumeDataError):
        join_blocks([(BLOCK_SIZE, b"x" * BLOCK_SIZE)], BLOCK_SIZE)


def test_special_files_are_refused(tmp_path):
    os.mkfifo(str(tmp_path / "pipe"))
    with pytest.raises(VolumeDataError, match="unsupported file type"):
        image_from_dir(str(tmp_path), VOLUME_SIZE)


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(VolumeDataError, match="does not exist"):
        dir_digest(str(tmp_path / "nope"))


def test_garbage_image_is_an_error(tmp_path):
    with pytest.raises(VolumeDataError, match="not readable"):
        dir_from_image(b"\xff" * BLOCK_SIZE, str(tmp_path / "target"))
