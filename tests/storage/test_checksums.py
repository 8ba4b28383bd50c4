"""Issue 32, item 4: a file's metadata is covered by a checksum as well as its tensors; files written before
(format version 1, tests/storage/fixtures/run_v1, written by ppox at commit 38020fd) still load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import ppox
from ppox.errors import CheckpointError
from ppox.storage.checkpoint import list_checkpoints, read_checkpoint
from ppox.utils import tensorfile
from tests.helpers import QUICK

OLD_RUN = Path(__file__).parent / "fixtures" / "run_v1"


def flip(path: Path, text: bytes, offset: int, bit: int, after: bytes = b"") -> None:
    """Flip one bit of the first ``text`` (after ``after``) in the file's JSON header, ``offset`` bytes into it."""
    data = bytearray(path.read_bytes())
    at = data.index(text, data.index(after))
    assert at < 8 + int.from_bytes(data[:8], "little"), "in the header"
    data[at + offset] ^= bit
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_checkpoints_metadata_is_damage_and_resume_falls_back(tmp_path, capsys):
    config = ppox.Config(**{**QUICK, "total_timesteps": 4096}, checkpoint_every=1024, run_dir=str(tmp_path),
                         run_name="g")
    ppox.train(config)
    files = list_checkpoints(tmp_path / "g")
    files[-1].unlink()  # as if stopped before the end
    flip(files[-2], b"0.99", 3, 0x01, after=b"gamma")  # gamma 0.99 -> 0.98: one bit
    assert b'gamma\\": 0.98' in files[-2].read_bytes()
    with pytest.raises(CheckpointError, match="damaged: its metadata does not match the checksum"):
        read_checkpoint(files[-2])
    result = ppox.resume(tmp_path / "g")
    assert "skipped a damaged checkpoint" in capsys.readouterr().err
    assert result.config.gamma == 0.99
    assert json.loads((tmp_path / "g" / "config.json").read_text())["gamma"] == 0.99


def test_a_flipped_bit_in_a_policys_env_id_is_damage(tmp_path):
    result = ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="e"))
    flip(result.run_path / "policy.safetensors", b"CartPole-v1", 10, 0x01)  # -> CartPole-v0
    with pytest.raises(CheckpointError, match="damaged: its metadata does not match the checksum"):
        ppox.load(result.run_path)


def test_a_version_2_file_without_its_checksums_is_refused(tmp_path):
    result = ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="s"))
    for path in (result.run_path / "policy.safetensors", list_checkpoints(result.run_path)[-1]):
        with safe_open(str(path), framework="numpy") as f:
            metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        assert metadata["format_version"] == "2"
        metadata.pop(tensorfile.HEADER_CHECKSUM)
        save_file(arrays, str(path), metadata=metadata)
        with pytest.raises(CheckpointError, match="its checksums are missing"):
            read_checkpoint(path) if "update_" in path.name else ppox.load(path)


def test_files_written_before_the_metadata_checksum_still_load(tmp_path):
    """Version 1 files (policies and checkpoints) load with their tensor checksum alone; a resumed old run
    writes version 2 files."""
    run = tmp_path / "old"
    shutil.copytree(OLD_RUN, run)
    for path in [run / "policy.safetensors", *list_checkpoints(run)]:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata()
        assert metadata["format_version"] == "1" and tensorfile.HEADER_CHECKSUM not in metadata
    policy = ppox.load(run)
    assert policy.config.hidden_sizes == (8,)
    assert read_checkpoint(list_checkpoints(run)[-1]).update == 3
    list_checkpoints(run)[-1].unlink()  # stopped before its end: resume from update 2
    result = ppox.resume(run)
    assert result.metrics["episode_return"].shape == (1, 3)
    newest = list_checkpoints(run)[-1]
    with safe_open(str(newest), framework="numpy") as f:
        metadata = f.metadata()
    assert metadata["format_version"] == "2" and tensorfile.HEADER_CHECKSUM in metadata
    assert read_checkpoint(newest).update == 3


def test_a_flipped_bit_in_either_checksum_is_damage(tmp_path):
    result = ppox.train(ppox.Config(**QUICK, run_dir=str(tmp_path), run_name="c"))
    path = result.run_path / "policy.safetensors"
    original = path.read_bytes()
    with safe_open(str(path), framework="numpy") as f:
        tensor_sum = f.metadata()[tensorfile.CHECKSUM].encode()
    flip(path, tensor_sum, 0, 0x01)  # the tensors' checksum (now caught by the metadata's first)
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        ppox.load(path)
    path.write_bytes(original)
    flip(path, b"sha256_metadata", 14, 0x01)  # the key's name: the sum is gone
    with pytest.raises(CheckpointError, match="checksums are missing"):
        ppox.load(path)
