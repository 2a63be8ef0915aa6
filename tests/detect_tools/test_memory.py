"""Memory free on this host, and what a checkpoint's weights take, read before loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from detect_tools import memory
from detect_tools.memory import safetensors_numel

GIB = 1 << 30


@pytest.mark.parametrize(
    ("cgroup_v2", "cgroup_v1", "free"),
    [
        (None, None, 20 * GIB),  # no container: the system's available memory
        (("max", "1"), None, 20 * GIB),  # a container without a limit
        ((str(16 * GIB), str(10 * GIB)), None, 6 * GIB),  # a Space's 16 GB, 10 of them taken
        (None, (str(8 * GIB), str(GIB)), 7 * GIB),  # cgroup v1
        (None, (str((1 << 63) - 4096), "1"), 20 * GIB),  # v1's "no limit"
    ],
)
def test_the_memory_free_is_the_containers_where_it_has_less(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cgroup_v2, cgroup_v1, free: int
) -> None:
    meminfo = f"MemTotal: {32 * GIB // 1024} kB\nMemAvailable: {20 * GIB // 1024} kB\n"
    _host(monkeypatch, tmp_path, meminfo, cgroup_v2, cgroup_v1)
    assert memory.available_memory() == free


@pytest.mark.parametrize("meminfo", ["MemTotal: 1024 kB\n", "MemAvailable:\n", "\n"])
def test_no_figure_of_free_memory_is_none_not_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, meminfo: str
) -> None:
    """Then nothing is refused for want of memory (no Linux, an old kernel)."""
    _host(monkeypatch, tmp_path, meminfo, None, None)
    assert memory.available_memory() is None


def _host(monkeypatch, tmp_path: Path, meminfo: str, cgroup_v2, cgroup_v1) -> None:
    """`/proc/meminfo` and the cgroup v2 and v1 files (limit, usage; None: not there) as given."""
    (tmp_path / "meminfo").write_text(meminfo)
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "meminfo")
    for name, files, values in (
        ("CGROUP_V2", ("memory.max", "memory.current"), cgroup_v2),
        ("CGROUP_V1", ("memory.limit_in_bytes", "memory.usage_in_bytes"), cgroup_v1),
    ):
        folder = tmp_path / name
        folder.mkdir()
        for file, value in zip(files, values or (), strict=False):
            (folder / file).write_text(value + "\n")
        monkeypatch.setattr(memory, name, folder)


def test_a_weight_file_is_counted_from_its_header(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5, dtype=torch.bfloat16)}, str(file))
    assert safetensors_numel(file) == 17
    file.write_bytes((2**40).to_bytes(8, "little") + b"{}")  # damaged: it names a vast header
    with pytest.raises(ValueError, match="header"):
        safetensors_numel(file)
