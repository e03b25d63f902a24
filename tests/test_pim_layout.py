"""The co-located placement policy: one bank group per chunk, a bank per role, aligned columns,
chunks rotating over bank groups, ranks and channels; and the naive policy it is measured against.
"""

from __future__ import annotations

import numpy as np
import pytest

from gradpimsim.config import preset
from gradpimsim.config.training import DTYPE_BYTES, OptimizerConfig, precision
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim import reference
from gradpimsim.pim.errors import LayoutError
from gradpimsim.pim.functional import PimArray, run_program
from gradpimsim.pim.kernels import UpdateTarget, build_program
from gradpimsim.pim.layout import (
    ColocatedPolicy,
    NaivePolicy,
    colocation_report,
    column_map,
    update_roles,
    update_tensors,
)
from gradpimsim.pim.store import DramStore

MOMENTUM = OptimizerConfig("momentum", lr=0.01, momentum=0.9)
ADAM = OptimizerConfig("adam")
CFG = preset("ddr4-2400")
CFG4 = CFG.with_overrides(channels=2, ranks=2)


def _chunks(pl, roles, cfg, chunk_params):
    """Per chunk: role -> list of (ch, rank, bg, bank, row, col) of its columns."""
    amap = Allocator(cfg).amap
    maps = {r: column_map(pl[r], amap) for r in roles}
    n = pl["weight"].nbytes // DTYPE_BYTES[roles["weight"]]
    out = []
    for k in range(-(-n // chunk_params)):
        entry = {}
        for r, d in roles.items():
            b = DTYPE_BYTES[d]
            lo = k * chunk_params * b // 64
            hi = -(-min(n, (k + 1) * chunk_params) * b // 64)
            cm = maps[r]
            entry[r] = [(int(cm.channel[c]), int(cm.rank[c]), int(cm.bankgroup[c]),
                         int(cm.bank[c]), int(cm.row[c]), int(cm.col[c])) for c in range(lo, hi)]
        out.append(entry)
    return out


@pytest.mark.parametrize("prec_name", ["fp32", "mixed-fp16", "mixed-int8"])
def test_roles_share_bank_group_differ_in_bank_align_columns(prec_name: str) -> None:
    prec = precision(prec_name)
    roles = update_roles(MOMENTUM, prec)
    alloc = Allocator(CFG4, ColocatedPolicy())
    n = 2048 * 37 + 5  # 38 chunks of one fp32 row: spans every unit, several rows per bank
    pl = alloc.place_group("t", update_tensors(n, MOMENTUM, prec))
    assert all(pl[r].nbytes == n * DTYPE_BYTES[d] for r, d in roles.items())
    chunks = _chunks(pl, roles, CFG4, 2048)
    for k, entry in enumerate(chunks):
        units = {loc[:3] for cols in entry.values() for loc in cols}
        assert len(units) == 1, f"chunk {k} spans {units}"
        banks = [{loc[3] for loc in cols} for cols in entry.values()]
        assert all(len(b) == 1 for b in banks)
        assert len({next(iter(b)) for b in banks}) == len(roles)  # one bank per role
        for r, cols in entry.items():
            assert len({loc[4] for loc in cols}) == 1  # one row per role per chunk
            c = [loc[5] for loc in cols]
            assert c == list(range(c[0], c[0] + len(c)))  # consecutive columns
            slot = 128 * DTYPE_BYTES[roles[r]] // 4
            assert c[0] % slot == 0
        # roles of one dtype: identical column offsets
        w = [loc[5] for loc in entry["weight"]]
        assert [loc[5] for loc in entry["momentum"]] == w
    # rotation: bank groups first, then ranks, then channels
    o = CFG4.org
    for k, entry in enumerate(chunks):
        u = k % (o.channels * o.ranks * o.bankgroups)
        ch, rank, bg = entry["weight"][0][:3]
        assert (ch, rank, bg) == (u // 8, (u // 4) % 2, u % 4)
    # rows come from the top down
    rows = {loc[4] for e in chunks for loc in e["weight"]}
    assert max(rows) == o.rows - 1


def test_low_precision_roles_pack_two_chunks_per_row() -> None:
    prec = precision("mixed-fp16")
    alloc = Allocator(CFG, ColocatedPolicy())
    pl = alloc.place_group("t", update_tensors(2048 * 8, MOMENTUM, prec))
    chunks = _chunks(pl, update_roles(MOMENTUM, prec), CFG, 2048)
    # chunks 0 and 4 share bank group 0; their fp16 gradients share one row, two halves
    g0, g4 = chunks[0]["grad"], chunks[4]["grad"]
    assert g0[0][:5] == g4[0][:5]
    assert (g0[0][5], g4[0][5]) == (0, 64)
    assert chunks[0]["weight"][0][4] != chunks[4]["weight"][0][4]


def test_adam_mixed_five_roles_pack_narrow_roles_in_one_bank() -> None:
    prec = precision("mixed")
    roles = update_roles(ADAM, prec)
    assert len(roles) == 5
    alloc = Allocator(CFG, ColocatedPolicy())
    pl = alloc.place_group("t", update_tensors(2048 * 6 + 3, ADAM, prec))
    for entry in _chunks(pl, roles, CFG, 2048):
        bank = {r: cols[0][3] for r, cols in entry.items()}
        assert bank["grad"] == bank["weight_copy"]
        assert len({bank[r] for r in ("weight", "exp_avg", "exp_avg_sq", "grad")}) == 4
        g, c = entry["grad"], entry["weight_copy"]
        assert g[0][4] == c[0][4]  # same row: both open with one activation
        assert {x[5] for x in g}.isdisjoint({x[5] for x in c})


def test_cursor_continues_rotation_across_tensors() -> None:
    alloc = Allocator(CFG, ColocatedPolicy())
    prec = precision("fp32")
    firsts = []
    for i in range(6):
        pl = alloc.place_group(f"bias{i}", update_tensors(10, MOMENTUM, prec))
        firsts.append(column_map(pl["weight"], alloc.amap).bankgroup[0])
    assert list(firsts) == [0, 1, 2, 3, 0, 1]


def test_registered_policy_names_and_member_names() -> None:
    alloc = Allocator(CFG, "colocated")
    pl = alloc.place_group("conv1.weight", update_tensors(100, MOMENTUM, precision("mixed")))
    assert pl["grad"].name == "conv1.weight/grad"
    assert alloc.lookup("conv1.weight/momentum") is pl["momentum"]
    assert Allocator(CFG, "naive").policy.name == "naive"


def test_role_sizes_must_be_in_simple_ratios() -> None:
    alloc = Allocator(CFG, ColocatedPolicy())
    with pytest.raises(LayoutError, match="narrower"):
        alloc.place_group("t", {"weight": 400, "grad": 300})


def test_zero_size_roles() -> None:
    alloc = Allocator(CFG, ColocatedPolicy())
    pl = alloc.place_group("t", {"weight": 64, "grad": 0})
    assert pl["grad"].nbytes == 0 and pl["grad"].segments == []


def test_naive_layout_measured_against_colocated() -> None:
    prec = precision("mixed")
    n = 300_000
    naive = Allocator(CFG, NaivePolicy()).place_group("t", update_tensors(n, MOMENTUM, prec))
    good = Allocator(CFG, ColocatedPolicy()).place_group("t", update_tensors(n, MOMENTUM, prec))
    rep_naive = colocation_report(naive, CFG)
    rep_good = colocation_report(good, CFG)
    assert rep_good == {"colocated": 1.0, "aligned": 1.0, "bank_conflicts": 0.0, "usable": 1.0}
    assert rep_naive["usable"] < 0.5
    assert rep_naive["aligned"] == 1.0  # the bump allocator keeps bursts aligned


def _run_sgd(cfg, policy, n=5000, steps=2):
    """Momentum SGD through the kernels and the reference; returns the colocation report."""
    prec = precision("mixed-bf16")
    alloc = Allocator(cfg, policy)
    pl = alloc.place_group("t", update_tensors(n, MOMENTUM, prec))
    store = DramStore(cfg, alloc.amap)
    array = PimArray(cfg, store)
    rng = np.random.default_rng(1)
    w = rng.standard_normal(n).astype(np.float32)
    store.write_tensor(pl["weight"], w, "fp32")
    state: dict = {}
    for step in range(1, steps + 1):
        g = reference.narrow_weight(rng.standard_normal(n).astype(np.float32), "bf16")
        store.write_tensor(pl["grad"], g, "bf16")
        copy = reference.mixed_precision_step(MOMENTUM, prec, w, g, state, step)
        run_program(build_program([UpdateTarget("t", n, pl)], MOMENTUM, prec, cfg, step=step),
                    array)
    assert np.array_equal(store.read_tensor(pl["weight"], "fp32", n).view(np.uint32),
                          w.view(np.uint32))
    assert np.array_equal(store.read_tensor(pl["momentum"], "fp32", n), state["momentum"])
    assert np.array_equal(store.read_tensor(pl["weight_copy"], "bf16", n), copy)
    return colocation_report(pl, cfg)


def test_one_bank_variant_runs_but_conflicts() -> None:
    rep = _run_sgd(CFG, ColocatedPolicy(spread_banks=False, name="colocated-onebank"))
    assert rep["usable"] == 1.0 and rep["bank_conflicts"] == 1.0


@pytest.mark.parametrize("overrides", [
    {"xor_bank_hash": True},
    {"address_mapping": "rochrabacobg"},  # columns not the lowest field: per-column segments
    {"address_mapping": "chrarobabgco"},
])
def test_other_address_mappings(overrides) -> None:
    cfg = CFG4.with_overrides(**overrides)
    rep = _run_sgd(cfg, ColocatedPolicy(chunk_columns=32))
    assert rep["usable"] == 1.0 and rep["bank_conflicts"] == 0.0
