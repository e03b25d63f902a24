"""PIM optimizer programs against the numpy reference: every optimizer x precision, several steps.

The kernels run functionally over a real DRAM store laid out by the co-located policy; the
reference runs over whole arrays.  fp32 master weights and state must agree bit for bit; the
low-precision weight copy must too (same conversions), and is also checked to be within the
dtype's rounding of the master.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradpimsim.config import preset
from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, PrecisionPolicy, precision
from gradpimsim.dram.commands import Cmd
from gradpimsim.host.allocator import Allocator
from gradpimsim.pim import datapath, reference
from gradpimsim.pim.bounds import closed_form_cycles, column_ops_per_param
from gradpimsim.pim.errors import LayoutError, PimCapabilityError
from gradpimsim.pim.functional import PimArray, run_program
from gradpimsim.pim.kernels import UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, NaivePolicy, update_roles, update_tensors
from gradpimsim.pim.store import DramStore

OPTIMIZERS = {
    "sgd": OptimizerConfig("sgd", lr=0.05),
    "sgd-wd": OptimizerConfig("sgd", lr=0.05, weight_decay=0.01),
    "momentum": OptimizerConfig("momentum", lr=0.02, momentum=0.9, dampening=0.1,
                                weight_decay=1e-3),
    "nesterov": OptimizerConfig("nesterov", lr=0.02, momentum=0.8, weight_decay=1e-3),
    "adam": OptimizerConfig("adam", lr=1e-3, weight_decay=0.01),
    "adamw": OptimizerConfig("adamw", lr=1e-3, weight_decay=0.05, beta2=0.99),
}
INT8_COPY = PrecisionPolicy("mixed-int8-copy", compute_dtype="int8", grad_dtype="int8")
PRECISIONS = {
    "fp32": precision("fp32"),
    "mixed-fp16": precision("mixed-fp16"),
    "mixed-bf16": precision("mixed-bf16"),
    "mixed-int8": precision("mixed-int8"),
    "int8-copy": INT8_COPY,
}
#: Gradient scale per grad dtype: int8 quantization scale, fp16 inverse loss scale.
GRAD_SCALE = {"fp32": 1.0, "fp16": 2.0 ** -7, "bf16": 1.0, "int8": 0.004}
COPY_SCALE = 0.02
EXT = PimConfig(has_sqrt_div=True, scalar_registers=16)

# 2 channels x 2 ranks x 4 bank groups, small chunks: tensors span many units, banks and rows.
CFG = preset("ddr4-2400").with_overrides(channels=2, ranks=2)
SIZES = (1, 15, 17, 3001, 20011)


def _grad(rng: np.random.Generator, n: int, dtype: str) -> np.ndarray:
    g = (rng.standard_normal(n) * 0.1).astype(np.float32)
    scale = GRAD_SCALE[dtype]
    if dtype == "int8":
        return datapath.quantize_int8(g, datapath.int8_inverse_scale(scale))
    return datapath.from_fp32(g / np.float32(scale), dtype)


class Harness:
    """Tensors placed by a policy in a DRAM store, plus the reference's own copies."""

    def __init__(self, opt, prec, sizes, cfg=CFG, pim=None, policy=None, seed=0) -> None:
        self.opt, self.prec, self.cfg = opt, prec, cfg
        self.pim = pim or (EXT if opt.needs_sqrt_div else PimConfig())
        self.alloc = Allocator(cfg, policy or ColocatedPolicy(chunk_columns=16))
        self.store = DramStore(cfg, self.alloc.amap)
        self.array = PimArray(cfg, self.store, self.pim)
        self.rng = np.random.default_rng(seed)
        self.targets = []
        self.ref = []
        for i, n in enumerate(sizes):
            pl = self.alloc.place_group(f"p{i}", update_tensors(n, opt, prec))
            self.targets.append(UpdateTarget(f"p{i}", n, pl))
            w = self.rng.standard_normal(n).astype(np.float32)
            self.store.write_tensor(pl["weight"], w, "fp32")
            self.ref.append({"master": w.copy(), "state": {}})

    def step(self, step: int) -> None:
        gd = self.prec.grad_dtype
        for t, r in zip(self.targets, self.ref, strict=True):
            g = _grad(self.rng, t.numel, gd)
            self.store.write_tensor(t.placements["grad"], g, gd)
            r["copy"] = reference.mixed_precision_step(
                self.opt, self.prec, r["master"], g, r["state"], step,
                grad_scale=GRAD_SCALE[gd], copy_scale=COPY_SCALE)
        prog = build_program(self.targets, self.opt, self.prec, self.cfg, self.pim, step=step,
                             grad_scale=GRAD_SCALE[gd], copy_scale=COPY_SCALE)
        run_program(prog, self.array)
        self.program = prog

    def check(self) -> None:
        for t, r in zip(self.targets, self.ref, strict=True):
            n, pl = t.numel, t.placements
            w = self.store.read_tensor(pl["weight"], "fp32", n)
            np.testing.assert_array_equal(w.view(np.uint32), r["master"].view(np.uint32),
                                          err_msg=f"{t.name} master weights")
            for role, ref_state in r["state"].items():
                got = self.store.read_tensor(pl[role], "fp32", n)
                np.testing.assert_array_equal(got.view(np.uint32), ref_state.view(np.uint32),
                                              err_msg=f"{t.name} {role}")
            if self.prec.has_weight_copy:
                cd = self.prec.compute_dtype
                copy = self.store.read_tensor(pl["weight_copy"], cd, n)
                np.testing.assert_array_equal(copy, r["copy"], err_msg=f"{t.name} weight copy")
                _within_rounding(copy, r["master"], cd)


def _within_rounding(copy: np.ndarray, master: np.ndarray, dtype: str) -> None:
    """The low-precision copy is the master rounded: within half an ulp (int8: half a step)."""
    if dtype == "int8":
        value = datapath.dequantize_int8(copy, COPY_SCALE)
        inside = np.abs(master) <= 127 * COPY_SCALE
        err = np.abs(value - master)[inside]
        assert np.all(err <= COPY_SCALE / 2 + 1e-6)  # plus fp32 rounding of x * (1/scale)
        return
    value = datapath.to_fp32(copy, dtype).astype(np.float64)
    bits = {"fp16": 11, "bf16": 8}[dtype]
    tiny = {"fp16": 2.0 ** -25, "bf16": 0.0}[dtype]
    err = np.abs(value - master.astype(np.float64))
    assert np.all(err <= np.abs(master) * 2.0 ** -bits + tiny)


@pytest.mark.parametrize(("opt_name", "prec_name"),
                         list(itertools.product(OPTIMIZERS, PRECISIONS)))
def test_matches_reference_over_steps(opt_name: str, prec_name: str) -> None:
    h = Harness(OPTIMIZERS[opt_name], PRECISIONS[prec_name], SIZES)
    for step in (1, 2, 3):
        h.step(step)
        h.check()
    # the tensors really spread: several units, several rows in one bank
    units = set(h.program.units)
    assert len(units) == CFG.org.channels * CFG.org.ranks * CFG.org.bankgroups
    rows = {(u, i.bank, i.row) for u, p in h.program.units.items() for i in p
            if i.cmd == Cmd.PIM_RD}
    assert len(rows) > 2 * len(units)


def test_one_million_params_fp32_sgd() -> None:
    h = Harness(OptimizerConfig("sgd", lr=0.1), precision("fp32"), (1_000_003,),
                cfg=preset("ddr4-2400"), policy=ColocatedPolicy())
    h.step(1)
    h.check()


def test_default_rows_chunks_and_plain_momentum_fp16() -> None:
    h = Harness(OptimizerConfig("momentum", lr=0.01, momentum=0.9), precision("mixed"),
                (70_001, 5), cfg=preset("ddr4-3200"), policy=ColocatedPolicy())
    for step in (1, 2):
        h.step(step)
        h.check()


def test_fp32_gradient_with_loss_scale() -> None:
    opt = OPTIMIZERS["momentum"]
    h = Harness(opt, precision("fp32"), (333,))
    t = h.targets[0]
    for step in (1, 2):
        g = (h.rng.standard_normal(t.numel)).astype(np.float32)
        h.store.write_tensor(t.placements["grad"], g, "fp32")
        reference.mixed_precision_step(opt, h.prec, h.ref[0]["master"], g, h.ref[0]["state"],
                                       step, grad_scale=0.25)
        prog = build_program(h.targets, opt, h.prec, CFG, step=step, grad_scale=0.25)
        assert any(i.op == "scale" for i in next(iter(prog.units.values())))
        run_program(prog, h.array)
        h.check()


def test_unit_interleaving_does_not_change_results() -> None:
    """The controller reorders commands across units; only per-unit order matters."""
    opt, prec = OPTIMIZERS["nesterov"], precision("mixed-bf16")
    a = Harness(opt, prec, (5000, 77), seed=3)
    b = Harness(opt, prec, (5000, 77), seed=3)
    a.step(1)
    a.step(2)
    for step in (1, 2):
        for t, r in zip(b.targets, b.ref, strict=True):
            g = _grad(b.rng, t.numel, "bf16")
            b.store.write_tensor(t.placements["grad"], g, "bf16")
            r["copy"] = reference.mixed_precision_step(opt, prec, r["master"], g, r["state"],
                                                       step)
        prog = build_program(b.targets, opt, prec, CFG, step=step)
        for (ch, rank), sets in prog.prologue.items():
            for ins in sets:
                b.array.issue(ch, rank, -1, ins)
        queues = {k: list(v) for k, v in prog.units.items()}
        rng = np.random.default_rng(7)
        while queues:
            key = list(queues)[rng.integers(len(queues))]
            ins = queues[key].pop(0)
            with np.errstate(all="ignore"):
                b.array.issue(*key, ins)
            if not queues[key]:
                del queues[key]
    b.check()
    for ta, tb in zip(a.targets, b.targets, strict=True):
        for role in ta.placements:
            assert np.array_equal(a.store.read_placed(ta.placements[role]),
                                  b.store.read_placed(tb.placements[role]))


# --- program shape and closed forms -------------------------------------------------------

@pytest.mark.parametrize(("opt_name", "prec_name"),
                         list(itertools.product(OPTIMIZERS, PRECISIONS)))
def test_column_ops_match_closed_form(opt_name: str, prec_name: str) -> None:
    opt, prec = OPTIMIZERS[opt_name], PRECISIONS[prec_name]
    n = 4096 * 3
    alloc = Allocator(CFG, ColocatedPolicy())
    pl = alloc.place_group("t", update_tensors(n, opt, prec))
    pim = EXT if opt.needs_sqrt_div else PimConfig()
    for step in (1, 2):
        prog = build_program([UpdateTarget("t", n, pl)], opt, prec, CFG, pim, step=step,
                             grad_scale=GRAD_SCALE[prec.grad_dtype], copy_scale=COPY_SCALE)
        expect = column_ops_per_param(opt, prec, first_step=step == 1) * n
        assert prog.column_ops() == expect
        if step == 2:
            read, write = prec.update_bytes(opt)
            assert prog.column_ops() == (read + write) * n // 64  # = host bus bytes / 64


def test_program_format() -> None:
    opt, prec = OPTIMIZERS["momentum"], precision("mixed-int8")
    h = Harness(opt, prec, (1000,))
    h.step(2)
    prog = h.program
    pim = h.pim
    assert set(prog.prologue) == {(ch, r) for ch, r, _ in prog.units}
    for sets in prog.prologue.values():
        assert all(i.cmd == Cmd.PIM_SET and 0 <= i.reg < pim.scalar_registers for i in sets)
    for ins in itertools.chain.from_iterable(prog.units.values()):
        assert ins.cmd in (Cmd.PIM_RD, Cmd.PIM_WR, Cmd.PIM_OP)
        assert 0 <= ins.reg < pim.vector_registers
        if ins.cmd == Cmd.PIM_OP:
            assert ins.bank == ins.row == ins.col == -1
        else:
            assert ins.bank >= 0 and ins.row >= 0 and 0 <= ins.col < CFG.org.bursts_per_row
    # scalars hold fp32 values the kernel named
    assert prog.scalars["neg_lr"][1] == float(np.float32(-opt.lr))


def test_reads_grouped_before_writes() -> None:
    """Plain fp32 SGD: 2 columns per lane group, 8 registers -> 4 lane groups per phase."""
    opt, prec = OptimizerConfig("sgd", lr=0.1), precision("fp32")
    n = 16 * 4 * 10
    alloc = Allocator(preset("ddr4-2400"), ColocatedPolicy())
    pl = alloc.place_group("t", update_tensors(n, opt, prec))
    prog = build_program([UpdateTarget("t", n, pl)], opt, prec, preset("ddr4-2400"))
    (unit_prog,) = prog.units.values()
    kinds = "".join({Cmd.PIM_RD: "R", Cmd.PIM_WR: "W", Cmd.PIM_OP: "O"}[i.cmd]
                    for i in unit_prog)
    assert kinds == ("R" * 8 + "O" * 4 + "W" * 4) * 10
    (st,) = prog.stats().values()
    assert st.turnarounds == 9
    cyc = closed_form_cycles(prog, preset("ddr4-2400"))
    t = preset("ddr4-2400").timing
    assert cyc["bank_group"] == 120 * t.tCCD_L + 9 * (4 + t.tWTR_L - t.tCCD_L)


def test_low_precision_columns_read_and_written_once() -> None:
    opt, prec = OPTIMIZERS["momentum"], precision("mixed-int8")
    h = Harness(opt, prec, (64 * 50,))
    h.step(2)
    seen: dict[tuple, int] = {}
    for key, prog in h.program.units.items():
        for ins in prog:
            if ins.cmd in (Cmd.PIM_RD, Cmd.PIM_WR):
                k = (key, ins.cmd, ins.bank, ins.row, ins.col)
                seen[k] = seen.get(k, 0) + 1
    assert max(seen.values()) == 1


# --- capabilities -------------------------------------------------------------------------

def _program(opt, prec, pim, n=100, step=2):
    alloc = Allocator(CFG, ColocatedPolicy())
    pl = alloc.place_group("t", update_tensors(n, opt, prec))
    return build_program([UpdateTarget("t", n, pl)], opt, prec, CFG, pim, step=step)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_needs_sqrt_div(name: str) -> None:
    with pytest.raises(PimCapabilityError) as e:
        _program(OptimizerConfig(name), precision("fp32"), PimConfig())
    assert e.value.capability == "pim.has_sqrt_div"
    _program(OptimizerConfig(name), precision("fp32"), PimConfig(has_sqrt_div=True))


def test_adam_with_weight_decay_needs_more_scalar_registers() -> None:
    with pytest.raises(PimCapabilityError) as e:
        _program(OptimizerConfig("adam", weight_decay=0.05), precision("mixed-int8"),
                 PimConfig(has_sqrt_div=True))
    assert e.value.capability == "pim.scalar_registers"


def test_missing_dtype_is_a_capability_error() -> None:
    with pytest.raises(PimCapabilityError) as e:
        _program(OPTIMIZERS["momentum"], precision("mixed-int8"),
                 PimConfig(dtypes=("fp32", "fp16")))
    assert e.value.capability == "pim.dtypes"
    assert "int8" in str(e.value)


def test_too_few_vector_registers() -> None:
    with pytest.raises(PimCapabilityError) as e:
        _program(OPTIMIZERS["momentum"], precision("mixed-int8"), PimConfig(vector_registers=3))
    assert e.value.capability == "pim.vector_registers"
    # four registers suffice when phases carry the int8 column
    _program(OPTIMIZERS["momentum"], precision("mixed-fp16"), PimConfig(vector_registers=5))


def test_low_precision_master_rejected() -> None:
    fp16_master = PrecisionPolicy("fp16", "fp16", "fp16", "fp16", "fp16")
    with pytest.raises(PimCapabilityError) as e:
        _program(OPTIMIZERS["sgd"], fp16_master, PimConfig())
    assert e.value.capability == "precision.master_dtype"


def test_nesterov_with_dampening_rejected() -> None:
    with pytest.raises(ConfigError):
        _program(OptimizerConfig("nesterov", dampening=0.5), precision("fp32"), PimConfig())


def test_naive_layout_is_rejected_not_run_on_the_host() -> None:
    opt, prec = OPTIMIZERS["momentum"], precision("mixed")
    alloc = Allocator(CFG, NaivePolicy())
    n = 50_000
    pl = alloc.place_group("t", update_tensors(n, opt, prec))
    with pytest.raises(LayoutError, match="bank group"):
        build_program([UpdateTarget("t", n, pl)], opt, prec, CFG)


def test_update_roles_order() -> None:
    assert list(update_roles(OPTIMIZERS["adam"], precision("mixed"))) == [
        "weight", "grad", "exp_avg", "exp_avg_sq", "weight_copy"]


@pytest.mark.parametrize(("prec_name", "vregs"), [("mixed-fp16", 5), ("mixed-int8", 5),
                                                   ("int8-copy", 6), ("fp32", 3)])
def test_tight_register_files_carry_columns_across_phases(prec_name: str, vregs: int) -> None:
    """With few registers a low-precision column outlives its phase; values must not change."""
    opt = OPTIMIZERS["nesterov"]
    h = Harness(opt, PRECISIONS[prec_name], (1, 17, 999), pim=PimConfig(vector_registers=vregs))
    for step in (1, 2):
        h.step(step)
        h.check()
    assert max(s.turnarounds for s in h.program.stats().values()) > 0


def test_momentum_zero_is_plain_sgd() -> None:
    opt = OptimizerConfig("momentum", lr=0.1, momentum=0.0, weight_decay=0.01)
    h = Harness(opt, precision("mixed-bf16"), (100, 33))
    for step in (1, 2):
        h.step(step)
        h.check()
    assert "momentum" not in h.ref[0]["state"]
    assert column_ops_per_param(opt, h.prec) == (2 + 4 + 4 + 2) / 64


def test_lazy_program_equals_stored_program() -> None:
    opt, prec = OPTIMIZERS["momentum"], precision("mixed-int8")
    alloc = Allocator(CFG, ColocatedPolicy(chunk_columns=16))
    targets = [UpdateTarget(f"t{i}", n, alloc.place_group(f"t{i}", update_tensors(n, opt, prec)))
               for i, n in enumerate((5000, 17))]
    eager = build_program(targets, opt, prec, CFG, step=2, grad_scale=0.01)
    lazy = build_program(targets, opt, prec, CFG, step=2, grad_scale=0.01, lazy=True)
    assert eager.units.keys() == lazy.units.keys()
    for key, prog in eager.units.items():
        assert list(lazy.units[key]) == prog
        assert len(lazy.units[key]) == len(prog)
    assert closed_form_cycles(eager, CFG) == closed_form_cycles(lazy, CFG)
    with pytest.raises(PimCapabilityError):
        build_program(targets, opt, prec, CFG, PimConfig(vector_registers=3), step=2, lazy=True)


def test_column_instructions_are_built_as_pim_instr() -> None:
    """The generator builds column commands without calling PimInstr (its Python __new__):
    the result must be the very tuple PimInstr gives, defaults included."""
    from gradpimsim.pim.phases import _column_instr
    from gradpimsim.pim.unit import PimInstr

    for cmd in (Cmd.PIM_RD, Cmd.PIM_WR):
        built = _column_instr(cmd, 3, 70000, 12, 5)
        assert type(built) is PimInstr
        assert built == PimInstr(cmd, 3, 70000, 12, 5)
        assert built._asdict() == PimInstr(cmd, 3, 70000, 12, 5)._asdict()

