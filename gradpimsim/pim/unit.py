"""One GradPIM unit: the registers and datapath beside a bank group's I/O, executing real values.

There is one unit per bank group per rank.  The rank's chips work in lockstep, so what is one
unit per chip in silicon acts here as one unit whose column operations move a whole 64 B column
(16 fp32 values).  The unit holds ``PimConfig.vector_registers`` 64 B vector registers and
``PimConfig.scalar_registers`` fp32 scalar registers (hyperparameters).

Instructions (:class:`PimInstr`) and their operands
---------------------------------------------------
``PIM_RD``  bank column ``(bank, row, col)`` -> vector register ``reg``
``PIM_WR``  vector register ``reg`` -> bank column ``(bank, row, col)``
``PIM_SET`` scalar register ``reg``, ``args = (part, payload)``: one 12-bit slice of the fp32
            bit pattern (a scalar takes :data:`SET_PARTS` commands; see :func:`set_scalar`)
``PIM_OP``  ``op`` names the operation, ``reg`` the destination vector register; ``args``:

=========  ======================  ==========================================  ===========
op         args                    effect (fp32 lanes; s[] = scalar registers)  needs
=========  ======================  ==========================================  ===========
axpby      (y, a, b)               reg = s[a]*reg + s[b]*y   (in place)
scale      (x, a)                  reg = s[a]*x
mov        (x,)                    reg = x (raw 64 B copy)
mul        (x, y)                  reg = x*y
adds       (x, a)                  reg = x + s[a]
cvt        (x, src, dst, part, s)  dtype conversion, see below
sqrt       (x,)                    reg = sqrt(x)                                has_sqrt_div
div        (x, y)                  reg = x / y                                  has_sqrt_div
divs       (x, a)                  reg = x / s[a]                               has_sqrt_div
=========  ======================  ==========================================  ===========

``cvt`` with ``src`` low precision and ``dst == 'fp32'`` expands lane group ``part`` (16 values)
of ``x`` to fp32, then multiplies by ``s[s]`` if ``s >= 0`` (int8 requires the scale; fp16/bf16
may use it to undo loss scaling).  With ``src == 'fp32'`` it multiplies by ``s[s]`` if ``s >= 0``
(for int8: the *inverse* scale), rounds to ``dst`` and writes lane group ``part`` of ``reg``,
keeping its other lanes: two (fp16/bf16) or four (int8) conversions fill one column.

Every arithmetic step is a separate, correctly rounded fp32 numpy operation in the order written
above, which is the order the reference optimizers use, so results agree bit for bit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from gradpimsim.config.pim import PimConfig
from gradpimsim.dram.commands import Cmd
from gradpimsim.pim import datapath
from gradpimsim.pim.errors import PimCapabilityError

#: Payload bits one PIM_SET carries (address pins A0-A11), and commands per fp32 scalar.
SET_PAYLOAD_BITS = 12
SET_PARTS = -(-32 // SET_PAYLOAD_BITS)
_SET_MASK = (1 << SET_PAYLOAD_BITS) - 1

#: Operations that need the square-root/divide extension (``PimConfig.has_sqrt_div``).
SQRT_DIV_OPS = frozenset({"sqrt", "div", "divs"})
#: All PIM_OP operations.
OPS = frozenset({"axpby", "scale", "mov", "mul", "adds", "cvt"}) | SQRT_DIV_OPS


class PimInstr(NamedTuple):
    """One PIM command as a unit sees it (the controller adds channel/rank/bank group).

    A named tuple, not a frozen dataclass: a model's update is tens of millions of these,
    generated as they issue, and a tuple is built about three times faster.
    """

    cmd: Cmd
    bank: int = -1
    row: int = -1
    col: int = -1
    reg: int = -1
    op: str = ""
    args: tuple = ()


def pim_rd(bank: int, row: int, col: int, reg: int) -> PimInstr:
    return PimInstr(Cmd.PIM_RD, bank, row, col, reg)


def pim_wr(bank: int, row: int, col: int, reg: int) -> PimInstr:
    return PimInstr(Cmd.PIM_WR, bank, row, col, reg)


def pim_op(op: str, reg: int, *args: object) -> PimInstr:
    return _pim_op(op, reg, args)


@lru_cache(maxsize=4096)
def _pim_op(op: str, reg: int, args: tuple) -> PimInstr:
    # PimInstr is immutable, so programs share one object per distinct operation
    return PimInstr(Cmd.PIM_OP, reg=reg, op=op, args=args)


def set_scalar(sreg: int, value: float) -> list[PimInstr]:
    """The PIM_SET commands that load fp32(``value``) into scalar register ``sreg``."""
    bits = int(np.float32(value).view(np.uint32))
    return [PimInstr(Cmd.PIM_SET, reg=sreg,
                     args=(p, (bits >> (p * SET_PAYLOAD_BITS)) & _SET_MASK))
            for p in range(SET_PARTS)]


def op_latency(instr: PimInstr, pim: PimConfig) -> int:
    """Fixed latency of a PIM_OP: a PIM_WR of its result waits this long after it issues."""
    return pim.sqrt_div_latency if instr.op in SQRT_DIV_OPS else pim.op_latency


def check_capability(op: str, pim: PimConfig, args: tuple = ()) -> None:
    """Raise :class:`PimCapabilityError` if ``pim`` cannot execute ``op`` (with ``args``)."""
    if op not in OPS:
        raise ValueError(f"unknown PIM_OP {op!r}; known: {', '.join(sorted(OPS))}")
    if op in SQRT_DIV_OPS and not pim.has_sqrt_div:
        raise PimCapabilityError(
            "pim.has_sqrt_div", f"PIM_OP {op!r} needs the square-root/divide extension "
            "(set pim.has_sqrt_div = true; it goes beyond the paper's unit)")
    if op == "cvt":
        for d in args[1:3]:
            if d not in pim.dtypes:
                raise PimCapabilityError(
                    "pim.dtypes", f"the PIM datapath does not convert {d!r} "
                    f"(pim.dtypes = {list(pim.dtypes)})")


class PimUnit:
    """Registers and datapath of one bank group's unit, executing instructions functionally."""

    def __init__(self, pim: PimConfig | None = None) -> None:
        self.pim = pim if pim is not None else PimConfig()
        self.vregs = np.zeros((self.pim.vector_registers, datapath.COLUMN_BYTES), dtype=np.uint8)
        self.sbits = np.zeros(self.pim.scalar_registers, dtype=np.uint32)
        # fp32 views of both register files: the hot path indexes these directly
        self._f32 = self.vregs.view(np.float32)
        self._s32 = self.sbits.view(np.float32)
        self.executed = 0

    # --- register views -------------------------------------------------------------------

    def scalar(self, i: int) -> np.float32:
        """Scalar register ``i`` as fp32."""
        return self._s32[self._sreg(i)]

    def vector(self, i: int, dtype: str = "fp32") -> np.ndarray:
        """Vector register ``i`` viewed as lanes of ``dtype`` (a view: writes go through)."""
        if dtype == "fp32":
            return self._f32[self._vreg(i)]
        return self.vregs[self._vreg(i)].view(datapath.STORAGE[dtype])

    def _vreg(self, i: int) -> int:
        if not 0 <= i < len(self.vregs):
            raise PimCapabilityError(
                "pim.vector_registers",
                f"vector register {i} does not exist (0..{len(self.vregs) - 1})")
        return i

    def _sreg(self, i: int) -> int:
        if not 0 <= i < len(self.sbits):
            raise PimCapabilityError(
                "pim.scalar_registers",
                f"scalar register {i} does not exist (0..{len(self.sbits) - 1})")
        return i

    # --- execution ------------------------------------------------------------------------

    def execute(self, instr: PimInstr, store, channel: int, rank: int, bankgroup: int) -> None:
        """Perform ``instr`` on real values (``store``: a :class:`~gradpimsim.pim.store.DramStore`).

        Called by the functional runner in program order, and by the timed simulation at each
        command's issue cycle (data effects at issue are exact because a unit's commands never
        overlap in a way that changes values: the controller only reorders across units).
        """
        cmd = instr.cmd
        if cmd == Cmd.PIM_RD:
            self.vregs[self._vreg(instr.reg)] = store.read_column(
                channel, rank, bankgroup, instr.bank, instr.row, instr.col)
        elif cmd == Cmd.PIM_WR:
            store.write_column(channel, rank, bankgroup, instr.bank, instr.row, instr.col,
                               self.vregs[self._vreg(instr.reg)])
        elif cmd == Cmd.PIM_OP:
            self._op(instr)
        elif cmd == Cmd.PIM_SET:
            self.set(instr)
        else:
            raise ValueError(f"{cmd.name} is not a PIM command")
        self.executed += 1

    def set(self, instr: PimInstr) -> None:
        """PIM_SET: load one 12-bit slice of a scalar register's fp32 bit pattern."""
        part, payload = instr.args
        if not 0 <= part < SET_PARTS or not 0 <= payload <= _SET_MASK:
            raise ValueError(f"bad PIM_SET slice {instr.args}")
        r = self._sreg(instr.reg)
        shift = part * SET_PAYLOAD_BITS
        keep = ~(_SET_MASK << shift) & 0xFFFFFFFF
        self.sbits[r] = ((int(self.sbits[r]) & keep) | (payload << shift)) & 0xFFFFFFFF

    def _op(self, instr: PimInstr) -> None:
        op, a = instr.op, instr.args
        check_capability(op, self.pim, a)
        v = self.vector
        s = self.scalar
        if op == "axpby":
            y, ra, rb = a
            x = v(instr.reg)
            x[:] = s(ra) * x + s(rb) * v(y)
        elif op == "scale":
            x, ra = a
            v(instr.reg)[:] = s(ra) * v(x)
        elif op == "mov":
            (x,) = a
            self.vregs[self._vreg(instr.reg)] = self.vregs[self._vreg(x)]
        elif op == "mul":
            x, y = a
            v(instr.reg)[:] = v(x) * v(y)
        elif op == "adds":
            x, ra = a
            v(instr.reg)[:] = v(x) + s(ra)
        elif op == "sqrt":
            (x,) = a
            v(instr.reg)[:] = np.sqrt(v(x))
        elif op == "div":
            x, y = a
            v(instr.reg)[:] = v(x) / v(y)
        elif op == "divs":
            x, ra = a
            v(instr.reg)[:] = v(x) / s(ra)
        elif op == "cvt":
            self._cvt(instr.reg, *a)
        else:  # pragma: no cover - check_capability rejects unknown ops
            raise ValueError(op)

    def _cvt(self, dst: int, x: int, src: str, to: str, part: int, sreg: int) -> None:
        scale = self.scalar(sreg) if sreg >= 0 else None
        if src != "fp32" and to == "fp32":
            n = datapath.FP32_LANES
            if not 0 <= part < datapath.parts(src):
                raise ValueError(f"cvt part {part} out of range for {src}")
            lanes = self.vector(x, src)[part * n:(part + 1) * n]
            if src == "int8" and scale is None:
                raise ValueError("cvt int8 -> fp32 needs a scale register")
            self.vector(dst)[:] = datapath.to_fp32(lanes, src, scale)
        elif src == "fp32" and to != "fp32":
            n = datapath.FP32_LANES
            if not 0 <= part < datapath.parts(to):
                raise ValueError(f"cvt part {part} out of range for {to}")
            if to == "int8" and scale is None:
                raise ValueError("cvt fp32 -> int8 needs an inverse-scale register")
            values = datapath.from_fp32(self.vector(x), to, scale)
            self.vector(dst, to)[part * n:(part + 1) * n] = values
        else:
            raise ValueError(f"cvt converts between fp32 and a low-precision dtype, "
                             f"not {src}->{to}")
