"""Placement policies: parameters apart from activations, by bank or by rank."""

from __future__ import annotations

import numpy as np
import pytest

import workloads
from gradpimsim.config import ConfigError, load_config
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.dram.address_map import AddressMap
from gradpimsim.host.allocator import Allocator, OutOfMemory, place_iteration
from gradpimsim.host.placement import AddressSpace, banks_for_update, partition
from gradpimsim.host.training import expand_training, group_roles
from gradpimsim.pim.layout import ColocatedPolicy

KIB = 1024


def test_address_space_by_hand() -> None:
    """rochrababgco on DDR4 x8 (1 channel, 1 rank): offset 6 bits, column 7, bank group 2,
    bank 2, row 16.  Banks {0, 1} allowed: runs of 2^15 = 32 KiB, and the third run of the
    region is bank 0 of row 1, at 2^17."""
    amap = AddressMap(load_config("ddr4-2400"))
    space = AddressSpace(amap, banks=[0, 1])
    assert space.unit == 32 * KIB
    assert space.capacity == amap.capacity // 2
    assert space.runs(0, 32 * KIB) == [(0, 32 * KIB)]
    assert space.runs(16 * KIB, 40 * KIB) == [(16 * KIB, 40 * KIB)]  # banks 0, 1 adjoin
    assert space.runs(48 * KIB, 32 * KIB) == [(48 * KIB, 16 * KIB), (128 * KIB, 16 * KIB)]
    assert space.physical(64 * KIB) == 128 * KIB
    assert amap.fields(space.physical(64 * KIB))[3:5] == (0, 1)  # bank 0, row 1
    # banks {1, 3}: non-adjacent allowed values
    space = AddressSpace(amap, banks=[1, 3])
    assert space.physical(0) == 1 << 15 and space.physical(32 * KIB) == 3 << 15


@pytest.mark.parametrize("name, banks, ranks", [
    ("ddr4-2400", [3], None), ("ddr4-2400", [0, 2], None), ("ddr4-2400-2r", None, [1]),
    ("ddr4-2400-2r", [1, 2, 3], [0])])
def test_address_space_covers_exactly_the_allowed_banks(name: str, banks: list[int] | None,
                                                        ranks: list[int] | None) -> None:
    for xor in (False, True):
        cfg = load_config(name)
        if xor:
            from dataclasses import replace
            cfg = replace(cfg, controller=replace(cfg.controller, xor_bank_hash=True))
        amap = AddressMap(cfg)
        space = AddressSpace(amap, ranks=ranks, banks=banks)
        rng = np.random.default_rng(1)
        starts = sorted(set(int(x) for x in rng.integers(0, space.capacity - 4096, 300)))
        prev = -1
        for v in starts:
            p = space.physical(v)
            ch, ra, bg, ba, ro, co = amap.fields(p)
            assert ba in (banks or range(4)) and ra in (ranks or range(cfg.org.ranks))
            if not xor:
                assert p > prev  # order preserving
            prev = p
            runs = space.runs(v, 4096)
            assert sum(n for _, n in runs) == 4096
            for a, n in runs:
                assert amap.fields(a)[3] in (banks or range(4))
                assert amap.fields(a + n - 1)[3] in (banks or range(4))


def test_banks_for_update() -> None:
    mixed = group_roles(1000, OptimizerConfig("momentum"), precision("mixed"))
    assert banks_for_update(mixed) == 3  # weight, momentum, grad + fp16 copy in one row
    fp32_sgd = group_roles(1000, OptimizerConfig("sgd"), precision("fp32"))
    assert banks_for_update(fp32_sgd) == 2
    adam = group_roles(1000, OptimizerConfig("adam"), precision("mixed"))
    assert banks_for_update(adam) == 4


def _schedule(name: str = "resnet18", batch: int = 2):  # type: ignore[no-untyped-def]
    return expand_training(workloads.get_workload(name, batch=batch),
                           OptimizerConfig("momentum"), "mixed")


@pytest.mark.parametrize("policy, cfgname", [("bank-partition", "ddr4-2400"),
                                             ("rank-partition", "ddr4-2400-2r"),
                                             ("shared", "ddr4-2400")])
def test_partitions_keep_parameters_and_activations_apart(policy: str, cfgname: str) -> None:
    cfg = load_config(cfgname)
    s = _schedule()
    alloc = place_iteration(s, cfg, ColocatedPolicy, policy)
    split = alloc.split
    amap = alloc.amap
    assert split.name == policy
    for name, pl in alloc.placements.items():
        segs = alloc.segments_for(name, 0, max(pl.nbytes, 1))
        for seg in segs:
            for addr in (seg.addr, seg.addr + seg.nbytes - 1):
                _, ra, _, ba, _, _ = amap.fields(addr)
                if name.startswith(("act:", "dact:")):
                    assert ra in split.act_ranks and ba in split.act_banks, name
                else:
                    assert ra in split.param_ranks and ba in split.param_banks, name
    if policy == "bank-partition":
        assert split.param_banks == (1, 2, 3) and split.act_banks == (0,)
    if policy == "rank-partition":
        assert split.param_ranks == (1,) and split.act_ranks == (0,)


def test_auto_takes_the_first_that_fits_and_says_why_none_does() -> None:
    cfg = load_config("ddr4-2400")
    s = _schedule()
    assert place_iteration(s, cfg, ColocatedPolicy, "auto").split.name == "bank-partition"
    # ResNet-50 at batch 64 keeps 3.37 GiB of activations and gradients: one bank of four
    # (2 GiB) cannot hold them, two can
    big = _schedule("resnet50", 64)
    alloc = place_iteration(big, cfg, ColocatedPolicy, "auto")
    assert alloc.split.name == "bank-partition" and alloc.split.param_banks == (2, 3)
    with pytest.raises(OutOfMemory, match=r"bank-partition \(3 parameter banks\): .*does not"):
        place_iteration(big, cfg, ColocatedPolicy, "bank-partition")
    # at batch 128 (6.75 GiB) even three banks of activations are too few: auto shares
    huge = _schedule("resnet50", 128)
    assert place_iteration(huge, cfg, ColocatedPolicy, "auto").split.name == "shared"
    with pytest.raises(ConfigError, match="two ranks"):
        place_iteration(s, cfg, ColocatedPolicy, "rank-partition")
    with pytest.raises(ConfigError, match="param_banks"):
        partition(cfg, "bank-partition", param_banks=4)


def test_linear_policy_capacity_follows_the_partition() -> None:
    cfg = load_config("ddr4-2400")
    shared = Allocator(cfg)
    split = Allocator(cfg, split=partition(cfg, "bank-partition", param_banks=3))
    assert split.capacity * 4 == shared.capacity
