"""Data-parallel runs under an existing launcher (`torchrun`, `accelerate launch`).

The launcher starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK; each rank
takes every WORLD_SIZE-th item, and rank 0 merges the ranks' record files after a barrier. The
process group uses gloo: it only carries the barrier, so no GPU collective backend is needed and
the same code runs on CPU-only machines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

T = TypeVar("T")

BARRIER_TIMEOUT = timedelta(hours=24)
"""Rank 0 waits at the barrier until the slowest rank is done, which on a large dataset can take
hours; the default of 30 minutes would abort a healthy run."""


@dataclass(frozen=True)
class Shard:
    """This process's place in the run: rank `rank` of `world` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def take(self, items: Sequence[T]) -> list[T]:
        """This rank's share: items rank, rank + world, … (balanced within one item)."""
        return list(items[self.rank :: self.world])

    def device(self, requested: str | None) -> str:
        """The device for this rank: cuda:LOCAL_RANK when CUDA is asked for or available."""
        if requested is None:
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        if requested == "cuda" and self.world > 1:
            return f"cuda:{self.local_rank}"
        return requested


def shard_from_env() -> Shard:
    """The shard the launcher's environment describes; one process when none is set."""
    return Shard(
        rank=int(os.environ.get("RANK", 0)),
        world=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def start(shard: Shard) -> None:
    """Joins the launcher's process group (a no-op for a single process)."""
    if shard.world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            # Otherwise every rank also opens a CUDA context on GPU 0, costing its memory.
            torch.cuda.set_device(shard.local_rank % torch.cuda.device_count())
        dist.init_process_group(
            "gloo", rank=shard.rank, world_size=shard.world, timeout=BARRIER_TIMEOUT
        )
        logger.info("Rank %d of %d joined the process group", shard.rank, shard.world)


def wait_for_all(shard: Shard) -> None:
    """Blocks until every rank has finished its share (and flushed its records)."""
    if shard.world > 1:
        dist.barrier()


def stop(shard: Shard) -> None:
    if shard.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
