# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A lab volume's content as a block image.

In the lab a Longhorn volume's data is a plain directory. Backups need a block device, so the
directory is serialized into a deterministic tar stream (sorted entries, owner/time normalized,
GNU format so no PAX headers carry times), zero-padded to whole blocks. Identical content gives
identical bytes, hence identical block checksums, so an incremental backup re-uses blocks.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile

BLOCK_SIZE = 2 * 1024 * 1024


class VolumeDataError(ValueError):
    """The directory cannot be turned into a volume image, or the image into a directory."""


def _mode(st_mode):
    # Keep only "executable or not"; umask and ownership differ between machines.
    if stat.S_ISDIR(st_mode) or st_mode & 0o111:
        return 0o755
    return 0o644


def _entries(root):
    """(archive name, absolute path) of everything under root, parents before children, sorted."""
    found = []
    for current, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        rel = os.path.relpath(current, root)
        for name in sorted(dirs + files):
            arcname = name if rel == "." else "%s/%s" % (rel.replace(os.sep, "/"), name)
            found.append((arcname, os.path.join(current, name)))
    return sorted(found, key=lambda item: item[0].split("/"))


def _tar_bytes(path):
    if not os.path.isdir(path):
        raise VolumeDataError("volume data directory %s does not exist" % path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for arcname, full in _entries(path):
            info = tarfile.TarInfo(arcname)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            st = os.lstat(full)
            info.mode = _mode(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(full)
                info.mode = 0o777
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                # Hard links are stored as plain files: link detection depends on inode numbers.
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                with open(full, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                raise VolumeDataError("unsupported file type in volume data: %s" % full)
    return buffer.getvalue()


def _round_up(size, block_size):
    return -(-size // block_size) * block_size


def image_from_dir(path: str, volume_size: int, block_size: int = BLOCK_SIZE) -> bytes:
    """The directory as a deterministic image, zero-padded to a multiple of ``block_size``."""
    data = _tar_bytes(path)
    padded = _round_up(len(data), block_size)
    if padded > volume_size:
        raise VolumeDataError("volume data in %s needs %d bytes, more than the volume size %d" % (path, padded, volume_size))
    return data + bytes(padded - len(data))


def _clear_dir(path):
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def dir_from_image(image: bytes, path: str) -> None:
    """Replace the directory's content with the image's content."""
    os.makedirs(path, exist_ok=True)
    _clear_dir(path)
    if not image.rstrip(b"\0"):
        # A never-written volume: all zeros, no file system content.
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(image), mode="r:") as tar:
            # "tar" rather than "data": symlinks may point anywhere, like on a real file system.
            extract_filter = getattr(tarfile, "tar_filter", None)
            if extract_filter is not None:
                tar.extractall(path, filter=extract_filter)
            else:
                for member in tar.getmembers():
                    if member.name.startswith("/") or ".." in member.name.split("/"):
                        raise VolumeDataError("unsafe path in volume image: %s" % member.name)
                tar.extractall(path)  # nosec B202 - names checked above
    except tarfile.TarError as exc:
        raise VolumeDataError("volume image is not readable: %s" % exc) from exc


def split_blocks(image: bytes, block_size: int = BLOCK_SIZE) -> list[tuple[int, bytes]]:
    """(offset, data) of every block that is not all zeros, like the mapped extents Longhorn backs up."""
    if len(image) % block_size:
        raise VolumeDataError("image size %d is not a multiple of the block size %d" % (len(image), block_size))
    zero = bytes(block_size)
    view = memoryview(image)
    blocks = []
    for offset in range(0, len(image), block_size):
        chunk = view[offset:offset + block_size]
        if chunk != zero:
            blocks.append((offset, bytes(chunk)))
    return blocks


def join_blocks(blocks, size: int) -> bytes:
    """The image of ``size`` bytes holding the given (offset, data) blocks, zeros elsewhere."""
    image = bytearray(size)
    for offset, data in blocks:
        if offset < 0 or offset + len(data) > size:
            raise VolumeDataError("block at offset %d (%d bytes) lies outside the image of %d bytes" % (offset, len(data), size))
        image[offset:offset + len(data)] = data
    return bytes(image)


def image_digest(image: bytes) -> str:
    """sha256 of an image without its zero padding; equals dir_digest of the directory it came from."""
    return hashlib.sha256(bytes(image).rstrip(b"\0")).hexdigest()


def dir_digest(path: str) -> str:
    """sha256 of the directory's deterministic image, for "byte-identical" checks."""
    return image_digest(_tar_bytes(path))
