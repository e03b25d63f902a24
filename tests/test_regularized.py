"""The regularized optimizer (``ewc-*``: g + lambda * omega * (theta - theta_old)) and its
task-boundary programs, on the host reference and on GradPIM, functional and timed.

Expected values are hand counts (bytes per parameter, column operations) or small cases
worked out by hand in exactly representable numbers; the random cases compare the PIM units
with the numpy reference bit for bit (fp32) and the low-precision copy within the dtype.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradpimsim.bench.importance import run_importance_bench
from gradpimsim.bench.update import run_update_bench
from gradpimsim.checker import ProtocolChecker
from gradpimsim.cli import main
from gradpimsim.config import preset
from gradpimsim.config.model import ConfigError
from gradpimsim.config.pim import PimConfig
from gradpimsim.config.training import OptimizerConfig, precision
from gradpimsim.host.allocator import Allocator
from gradpimsim.host.training import group_roles, update_traffic
from gradpimsim.pim import datapath, reference
from gradpimsim.pim.bounds import column_ops_per_param
from gradpimsim.pim.errors import PimCapabilityError
from gradpimsim.pim.functional import PimArray, run_program
from gradpimsim.pim.importance import (
    build_importance_program,
    importance_column_ops_per_param,
    importance_tensors,
    importance_traffic,
)
from gradpimsim.pim.kernels import UpdateTarget, build_program
from gradpimsim.pim.layout import ColocatedPolicy, column_map, update_roles, update_tensors
from gradpimsim.pim.store import DramStore
from tests.test_pim_kernels import CFG, PRECISIONS, Harness

EWC = {
    "ewc-sgd": OptimizerConfig("ewc-sgd", lr=0.05, weight_decay=0.01, reg_lambda=0.7),
    "ewc-momentum": OptimizerConfig("ewc-momentum", lr=0.02, momentum=0.9, weight_decay=1e-3,
                                    reg_lambda=3.0),
    "ewc-nesterov": OptimizerConfig("ewc-nesterov", lr=0.02, momentum=0.8, reg_lambda=0.25),
}


def _regularize(h: Harness, seed: int = 11) -> None:
    """Non-trivial importance and old weights in DRAM and in the reference's state."""
    rng = np.random.default_rng(seed)
    for t, r in zip(h.targets, h.ref, strict=True):
        omega = np.abs(rng.standard_normal(t.numel)).astype(np.float32)
        old = (r["master"] + rng.standard_normal(t.numel) * 0.1).astype(np.float32)
        h.store.write_tensor(t.placements["omega"], omega, "fp32")
        h.store.write_tensor(t.placements["theta_old"], old, "fp32")
        r["state"]["omega"], r["state"]["theta_old"] = omega.copy(), old.copy()


# --- the formula, by hand ------------------------------------------------------------------

def test_hand_computed_step_on_pim_and_reference() -> None:
    """theta 3, theta_old 1, omega 0.5, lambda 2, g 0.25, lr 0.5:
    g' = 0.25 + 2 * (0.5 * (3 - 1)) = 2.25, theta = 3 - 0.5 * 2.25 = 1.875 (all exact)."""
    opt = OptimizerConfig("ewc-sgd", lr=0.5, reg_lambda=2.0)
    prec = precision("fp32")
    n = 40
    alloc = Allocator(CFG, ColocatedPolicy(chunk_columns=16))
    pl = alloc.place_group("p", update_tensors(n, opt, prec))
    store = DramStore(CFG, alloc.amap)
    for role, value in (("weight", 3.0), ("grad", 0.25), ("omega", 0.5), ("theta_old", 1.0)):
        store.write_tensor(pl[role], np.full(n, value, np.float32), "fp32")
    run_program(build_program([UpdateTarget("p", n, pl)], opt, prec, CFG), PimArray(CFG, store))
    assert np.all(store.read_tensor(pl["weight"], "fp32", n) == 1.875)
    assert np.all(store.read_tensor(pl["omega"], "fp32", n) == 0.5)
    assert np.all(store.read_tensor(pl["theta_old"], "fp32", n) == 1.0)
    w = np.full(3, 3.0, np.float32)
    state = {"omega": np.full(3, 0.5, np.float32), "theta_old": np.ones(3, np.float32)}
    reference.optimizer_step(opt, w, np.full(3, 0.25, np.float32), state, 1)
    assert np.all(w == 1.875)


def _numpy_ewc_momentum(w, g, buf, omega, old, *, lr, mu, wd, lam):
    """The regularized momentum step written out in numpy fp32, one rounding per operation
    (torch.optim.SGD's order: regularizer into the gradient, then weight decay, then the
    buffer ``mu * buf + d`` or, with no buffer yet, ``d``; then ``w + (-lr) * buf``)."""
    f = np.float32
    d = g + f(lam) * (omega * (w - old))
    d = d + f(wd) * w
    buf = d.copy() if buf is None else f(mu) * buf + f(1.0) * d
    return w + f(-lr) * buf, buf


@pytest.mark.parametrize("path", ["host", "pim"])
def test_two_steps_against_plain_numpy(path: str) -> None:
    """fp32, random values: the host updater (the baseline's update in functional mode) and
    the GradPIM program both equal the numpy formula bit for bit, and leave omega and
    theta_old untouched."""
    from gradpimsim.system.values import HostUpdater

    opt = EWC["ewc-momentum"]
    prec = precision("fp32")
    n = 3001
    rng = np.random.default_rng(7)
    alloc = Allocator(CFG, ColocatedPolicy(chunk_columns=16, fit_banks=True))
    pl = alloc.place_group("p", update_tensors(n, opt, prec))
    store = DramStore(CFG, alloc.amap)
    w = rng.standard_normal(n).astype(np.float32)
    omega = np.abs(rng.standard_normal(n)).astype(np.float32)
    old = (w + rng.standard_normal(n) * 0.1).astype(np.float32)
    for role, v in (("weight", w), ("omega", omega), ("theta_old", old),
                    ("momentum", np.zeros(n, np.float32))):
        store.write_tensor(pl[role], v, "fp32")
    target = UpdateTarget("p", n, pl)
    buf = None
    for step in (1, 2):
        g = rng.standard_normal(n).astype(np.float32)
        store.write_tensor(pl["grad"], g, "fp32")
        w, buf = _numpy_ewc_momentum(w, g, buf, omega, old, lr=opt.lr, mu=opt.momentum,
                                     wd=opt.weight_decay, lam=opt.reg_lambda)
        if path == "host":
            HostUpdater(store, {"p": target}, opt, prec, step)("update:p", {"param": "p"})
        else:
            run_program(build_program([target], opt, prec, CFG, step=step),
                        PimArray(CFG, store))
        for role, want in (("weight", w), ("momentum", buf), ("omega", omega),
                           ("theta_old", old)):
            got = store.read_tensor(pl[role], "fp32", n)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                          err_msg=f"{path} step {step} {role}")


def test_zero_lambda_is_the_plain_optimizer() -> None:
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    a, b = w0.copy(), w0.copy()
    state = {"omega": np.abs(g), "theta_old": g.copy()}
    reference.optimizer_step(OptimizerConfig("ewc-momentum", reg_lambda=0.0), a, g, state, 1)
    reference.optimizer_step(OptimizerConfig("momentum"), b, g, {}, 1)
    assert np.array_equal(a, b)


# --- PIM against the reference ---------------------------------------------------------------

#: ewc-momentum under every precision; the other two (their base recipes are tested under every
#: precision in test_pim_kernels) under fp32 and the int8 gradient with an int8 copy.
CASES = [("ewc-momentum", p) for p in PRECISIONS] + list(
    itertools.product(("ewc-sgd", "ewc-nesterov"), ("fp32", "int8-copy")))


@pytest.mark.parametrize(("opt_name", "prec_name"), CASES)
def test_matches_reference_over_steps(opt_name: str, prec_name: str) -> None:
    """fp32 master, momentum bit-exact; omega and theta_old unchanged (they are in the
    reference's state and compared); the low-precision copy equal and within the dtype."""
    h = Harness(EWC[opt_name], PRECISIONS[prec_name], (1, 17, 3001, 20011))
    _regularize(h)
    for step in (1, 2, 3):
        h.step(step)
        h.check()


def test_read_only_roles_are_never_written() -> None:
    opt, prec = EWC["ewc-momentum"], precision("mixed")
    h = Harness(opt, prec, (4096,))
    _regularize(h)
    h.step(2)
    (t,) = h.targets
    amap = h.alloc.amap
    const = set()
    for role in ("omega", "theta_old"):
        cm = column_map(t.placements[role], amap, t.numel * 4)
        const |= set(zip(cm.bank.tolist(), cm.row.tolist(), cm.col.tolist(), strict=True))
    writes = {(i.bank, i.row, i.col) for p in h.program.units.values() for i in p
              if i.cmd.name == "PIM_WR"}
    reads = {(i.bank, i.row, i.col) for p in h.program.units.values() for i in p
             if i.cmd.name == "PIM_RD"}
    assert writes and not writes & const
    assert const <= reads


# --- closed forms, by hand ---------------------------------------------------------------------

def test_bytes_and_column_ops_per_parameter() -> None:
    mixed, fp32 = precision("mixed"), precision("fp32")
    ewc = OptimizerConfig("ewc-momentum")
    # mixed: read grad 2 + weight 4 + momentum 4 + omega 4 + theta_old 4; write 4 + 4 + copy 2
    assert mixed.update_bytes(ewc) == (18, 10)
    assert fp32.update_bytes(ewc) == (20, 8)
    assert mixed.update_bytes(OptimizerConfig("ewc-sgd")) == (14, 6)
    assert update_traffic(1000, ewc, mixed) == (18_000, 10_000)
    assert column_ops_per_param(ewc, mixed) == 28 / 64
    assert column_ops_per_param(ewc, mixed, first_step=True) == 24 / 64  # no momentum read
    assert set(group_roles(10, ewc, mixed)) == {"weight", "grad", "momentum", "omega",
                                                "theta_old", "weight_copy"}
    assert list(update_roles(ewc, mixed)) == ["weight", "grad", "momentum", "omega",
                                              "theta_old", "weight_copy"]


@pytest.mark.parametrize("prec_name", ["fp32", "mixed-fp16", "mixed-int8"])
@pytest.mark.parametrize("step", [1, 2])
def test_program_column_ops_equal_closed_form(prec_name: str, step: int) -> None:
    opt, prec = EWC["ewc-momentum"], PRECISIONS[prec_name]
    n = 4096 * 3
    pl = Allocator(CFG, ColocatedPolicy()).place_group("t", update_tensors(n, opt, prec))
    prog = build_program([UpdateTarget("t", n, pl)], opt, prec, CFG, step=step,
                         grad_scale=0.5 if prec.grad_dtype == "int8" else 1.0)
    assert prog.column_ops() == column_ops_per_param(opt, prec, first_step=step == 1) * n
    # three more PIM_OPs per 16 parameters than the plain optimizer: W - theta_old, times
    # omega, lambda times that added to the gradient
    plain = OptimizerConfig("momentum", lr=opt.lr, momentum=0.9, weight_decay=1e-3)
    pl2 = Allocator(CFG, ColocatedPolicy()).place_group("t", update_tensors(n, plain, prec))
    base = build_program([UpdateTarget("t", n, pl2)], plain, prec, CFG, step=step,
                         grad_scale=0.5 if prec.grad_dtype == "int8" else 1.0)
    ops = sum(s.ops for s in prog.stats().values())
    assert ops - sum(s.ops for s in base.stats().values()) == 3 * n // 16


def test_scalar_register_budget() -> None:
    """one, -1, lambda, momentum, 1 - dampening, -lr, weight decay, the int8 gradient scale
    and the int8 copy's inverse scale: nine distinct values for eight registers."""
    from tests.test_pim_kernels import INT8_COPY

    opt = OptimizerConfig("ewc-momentum", momentum=0.9, dampening=0.2, weight_decay=0.01,
                          reg_lambda=5.0)
    pl = Allocator(CFG, ColocatedPolicy()).place_group("t", update_tensors(64, opt, INT8_COPY))
    with pytest.raises(PimCapabilityError) as e:
        build_program([UpdateTarget("t", 64, pl)], opt, INT8_COPY, CFG, grad_scale=0.5,
                      copy_scale=0.25)
    assert e.value.capability == "pim.scalar_registers"
    build_program([UpdateTarget("t", 64, pl)], opt, INT8_COPY, CFG, PimConfig(
        scalar_registers=9), grad_scale=0.5, copy_scale=0.25)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="optimizer.name"):
        OptimizerConfig("ewc-adam")
    with pytest.raises(ConfigError, match="reg_lambda"):
        OptimizerConfig("ewc-sgd", reg_lambda=-1.0)
    with pytest.raises(ConfigError, match="reg_lambda"):
        OptimizerConfig("ewc-sgd", reg_lambda=float("nan"))
    opt = OptimizerConfig("ewc-nesterov")
    assert (opt.base, opt.regularized, opt.state_roles) == ("nesterov", True, ("momentum",))
    assert OptimizerConfig("nesterov").const_roles == ()


# --- layout: six roles in four banks -------------------------------------------------------------

def _conflicted_banks(pl: dict, amap, org) -> int:  # type: ignore[no-untyped-def]
    """Banks where two roles of one update group live in different rows."""
    seen: dict[tuple, set] = {}
    for role, p in pl.items():
        cm = column_map(p, amap, p.nbytes)
        for u, b, r in zip(cm.unit(org).tolist(), cm.bank.tolist(), cm.row.tolist(),
                           strict=True):
            seen.setdefault((u, b), set()).add((role, r))
    conflicted = 0
    for pairs in seen.values():
        by_role: dict[str, set] = {}
        for role, r in pairs:
            by_role.setdefault(role, set()).add(r)
        if len({frozenset(v) for v in by_role.values()}) > 1:
            conflicted += 1
    return conflicted


def test_fit_banks_keeps_every_role_in_an_open_row() -> None:
    """Whole-row chunks put two fp32 roles in different rows of one bank (row conflicts
    inside every phase); fit_banks halves the chunk so fp32 roles pair up in a row."""
    opt, prec = EWC["ewc-momentum"], precision("mixed")
    n = 2048 * 8  # 8 whole-row chunks: one per unit
    tensors = update_tensors(n, opt, prec)
    plain = Allocator(CFG, ColocatedPolicy()).place_group("t", tensors)
    alloc = Allocator(CFG, ColocatedPolicy(fit_banks=True))
    fitted = alloc.place_group("t", tensors)

    def banks_shared(pl: dict) -> int:
        return _conflicted_banks(pl, alloc.amap, CFG.org)

    assert banks_shared(plain) > 0
    assert banks_shared(fitted) == 0
    # the momentum optimizer's four roles already fit: fit_banks changes nothing
    mom = update_tensors(n, OptimizerConfig("momentum"), prec)
    a = Allocator(CFG, ColocatedPolicy()).place_group("t", mom)
    b = Allocator(CFG, ColocatedPolicy(fit_banks=True)).place_group("t", mom)
    assert all(a[r].segments == b[r].segments for r in mom)


def test_iteration_plan_fits_the_six_roles() -> None:
    """A training iteration places a regularized optimizer's groups with fit_banks: in no
    bank do two roles of one group sit in different rows (a row conflict in every phase)."""
    from gradpimsim.host.training import group_tensor_name
    from gradpimsim.system.config import RunConfig
    from gradpimsim.system.simulate import plan

    p = plan(RunConfig(workload="mlp-small", optimizer="ewc-momentum"))
    assert p.schedule.groups
    for pid, roles in p.schedule.groups.items():
        pl = {r: p.alloc.placements[group_tensor_name(pid, r)] for r in roles}
        assert set(pl) == {"weight", "grad", "momentum", "omega", "theta_old", "weight_copy"}
        assert _conflicted_banks(pl, p.alloc.amap, p.cfg.org) == 0, pid


# --- the task boundary -------------------------------------------------------------------------

def test_importance_by_hand() -> None:
    """Gradients 0.5, -1, 2 over three samples: F = 0.25 + 1 + 4 = 5.25; omega 1 becomes
    1 + 5.25 / 3 = 2.75 (fp32(1/3) * 5.25 rounds to 1.75); theta_old takes the weights."""
    opt, prec = OptimizerConfig("ewc-momentum"), precision("fp32")
    n = 33
    alloc = Allocator(CFG, ColocatedPolicy(chunk_columns=16))
    pl = alloc.place_group("p", importance_tensors(n, prec))
    store = DramStore(CFG, alloc.amap)
    array = PimArray(CFG, store)
    target = [UpdateTarget("p", n, pl)]
    store.write_tensor(pl["fisher"], np.full(n, 99.0, np.float32), "fp32")  # stale: overwritten
    for i, g in enumerate((0.5, -1.0, 2.0)):
        store.write_tensor(pl["grad"], np.full(n, g, np.float32), "fp32")
        run_program(build_importance_program(target, "fisher", opt, prec, CFG, first=i == 0),
                    array)
    assert np.all(store.read_tensor(pl["fisher"], "fp32", n) == 5.25)
    store.write_tensor(pl["omega"], np.ones(n, np.float32), "fp32")
    w = np.arange(n, dtype=np.float32) - 7.5
    store.write_tensor(pl["weight"], w, "fp32")
    run_program(build_importance_program(target, "consolidate", opt, prec, CFG, samples=3),
                array)
    assert np.all(store.read_tensor(pl["omega"], "fp32", n) == 2.75)
    assert np.array_equal(store.read_tensor(pl["theta_old"], "fp32", n), w)


@pytest.mark.parametrize("prec_name", ["fp32", "mixed-fp16", "mixed-bf16", "mixed-int8"])
def test_importance_matches_reference(prec_name: str) -> None:
    opt, prec = OptimizerConfig("ewc-sgd"), PRECISIONS[prec_name]
    sizes = (1, 17, 5000)
    alloc = Allocator(CFG, ColocatedPolicy(chunk_columns=16))
    store = DramStore(CFG, alloc.amap)
    array = PimArray(CFG, store)
    rng = np.random.default_rng(5)
    targets, refs = [], []
    for i, n in enumerate(sizes):
        pl = alloc.place_group(f"p{i}", importance_tensors(n, prec))
        targets.append(UpdateTarget(f"p{i}", n, pl))
        omega = np.abs(rng.standard_normal(n)).astype(np.float32)
        w = rng.standard_normal(n).astype(np.float32)
        store.write_tensor(pl["omega"], omega, "fp32")
        store.write_tensor(pl["weight"], w, "fp32")
        refs.append({"fisher": None, "omega": omega, "w": w})
    scale = 0.01 if prec.grad_dtype == "int8" else 1.0
    for sample in range(4):
        for t, r in zip(targets, refs, strict=True):
            g = (rng.standard_normal(t.numel) * 0.1).astype(np.float32)
            if prec.grad_dtype == "int8":
                g = datapath.quantize_int8(g, datapath.int8_inverse_scale(scale))
            else:
                g = datapath.from_fp32(g, prec.grad_dtype)
            store.write_tensor(t.placements["grad"], g, prec.grad_dtype)
            r["fisher"] = reference.fisher_step(r["fisher"],
                                                reference.widen_grad(g, prec.grad_dtype, scale))
        prog = build_importance_program(targets, "fisher", opt, prec, CFG, first=sample == 0,
                                        grad_scale=scale)
        run_program(prog, array)
    run_program(build_importance_program(targets, "consolidate", opt, prec, CFG, samples=4),
                array)
    for t, r in zip(targets, refs, strict=True):
        omega, old = reference.consolidate(r["omega"], r["fisher"], r["w"], 4)
        for role, want in (("omega", omega), ("theta_old", old)):
            got = store.read_tensor(t.placements[role], "fp32", t.numel)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_importance_traffic_by_hand() -> None:
    mixed = precision("mixed")
    assert importance_traffic("fisher", mixed) == (6, 4)  # grad 2 + F 4 read, F written
    assert importance_traffic("fisher", mixed, first=True) == (2, 4)
    assert importance_traffic("consolidate", mixed) == (12, 8)  # F, omega, W; omega, old
    assert importance_column_ops_per_param("consolidate", mixed) == 20 / 64
    with pytest.raises(ConfigError, match="stage"):
        importance_traffic("boundary", mixed)
    with pytest.raises(ConfigError, match="regularized"):
        build_importance_program([], "fisher", OptimizerConfig("momentum"), mixed, CFG)


# --- timed: the update bench -------------------------------------------------------------------

def _checked_bench(fn, cfg, *args, **kw):
    pim_checker = ProtocolChecker(cfg, PimConfig(), raise_on_violation=True)
    bench = fn(cfg, *args, pim_sink=pim_checker.observe, **kw)
    assert pim_checker.finish().ok
    return bench


def test_bench_regularized_step_and_boundary_programs() -> None:
    cfg = preset("ddr4-2400")
    mixed = precision("mixed")
    ewc = OptimizerConfig("ewc-momentum", lr=0.01, momentum=0.9)
    b = _checked_bench(run_update_bench, cfg, 8192, ewc, mixed)
    assert b.verified is True
    assert b.host.bus_bytes == 28 * 8192
    assert b.pim.column_ops == 28 * 8192 // 64
    for stage, first, per in (("fisher", True, 6), ("fisher", False, 10),
                              ("consolidate", False, 20)):
        ib = _checked_bench(run_importance_bench, cfg, 8192, stage, ewc, mixed, first=first)
        assert ib.verified is True, ib.mismatches
        assert ib.host.bus_bytes == per * 8192
        assert ib.pim.column_ops == per * 8192 // 64
        assert ib.speedup > 1.0


def test_sweep_point_of_a_regularized_optimizer() -> None:
    """An update-bench sweep point takes an ewc-* optimizer with its base's momentum (0.9 for
    Nesterov, which refuses none): mixed ewc-nesterov moves 28 B per parameter on the host."""
    from gradpimsim.sweep.runner import update_bench_runner

    m = update_bench_runner({"params": 2048, "optimizer": "ewc-nesterov"})
    assert m["verified"] is True
    assert m["host_bus_bytes"] == 28 * 2048


def test_update_bench_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["update-bench", "--params", "2048", "--optimizer", "ewc-momentum",
                 "--reg-lambda", "0.5", "--step", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "bit-exact" in out
    # mixed momentum 20 B -> 28 B per parameter; column ops 20/64 -> 28/64
    assert "add 8 B per parameter" in out and "momentum 20 B -> 28 B, x1.40" in out
    assert "(0.3125 -> 0.4375, x1.40)" in out
    assert main(["update-bench", "--params", "2048", "--optimizer", "ewc-sgd",
                 "--program", "consolidate", "--samples", "3"]) == 0
    assert "consolidate program" in capsys.readouterr().out
    assert main(["update-bench", "--params", "2048", "--optimizer", "momentum",
                 "--program", "fisher"]) == 2
    assert "ewc-" in capsys.readouterr().err
