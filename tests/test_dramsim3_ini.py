"""DRAMsim3 .ini import: the real shipped files, and every kind of bad input naming its field.

The real files live outside the project (``../shared/reference/dramsim3`` next to the repository,
MIT licensed, never copied in); tests using them skip when that directory is absent.  Bad-input
tests build their files from a template written here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gradpimsim.config import ConfigError, load_config, preset
from gradpimsim.config.dramsim3 import load_dramsim3_ini, parse_ini, read_dramsim3_ini
from gradpimsim.dram.address_map import AddressMap
from tests.helpers import addr_of, simulate

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "dramsim3"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference absent")

#: (file, matching preset): numbers that must agree cycle for cycle.
REAL_FILES = [
    ("DDR4_8Gb_x8_2400.ini", "ddr4-2400-x8"),
    ("DDR4_8Gb_x8_3200.ini", "ddr4-3200-x8"),
    ("DDR4_8Gb_x16_2400.ini", "ddr4-2400-x16"),
]

TEMPLATE = """\
[dram_structure]
protocol = DDR4
bankgroups = 4
banks_per_group = 4
rows = 65536
columns = 1024
device_width = 8
BL = 8

[timing]
tCK = 0.83
AL = 0
CL = 17
CWL = 12
tRCD = 17
tRP = 17
tRAS = 39
tRFC = 420
tRFC2 = 312
tRFC4 = 192
tREFI = 9360
tRPRE = 1
tWPRE = 1
tRRD_S = 4
tRRD_L = 6
tWTR_S = 3
tWTR_L = 9
tFAW = 26
tWR = 18
tWR2 = 19
tRTP = 9
tCCD_S = 4
tCCD_L = 6
tCKE = 6
tCKESR = 7
tXS = 432
tXP = 8
tRTRS = 1

[power]
VDD = 1.2
IDD0 = 48
IPP0 = 3.0
IDD2P = 25
IDD2N = 34
IDD3P = 37
IDD3N = 43
IDD4W = 123
IDD4R = 135
IDD5AB = 250
IDD6x = 30

[system]
channel_size = 8192
channels = 1
bus_width = 64
address_mapping = rochrababgco
queue_structure = PER_BANK
refresh_policy = RANK_LEVEL_STAGGERED
row_buf_policy = OPEN_PAGE
cmd_queue_size = 8
trans_queue_size = 32

[other]
epoch_period = 1204819
output_level = 1

[thermal]
power_epoch_period = 100000; power epoch period (# cycle)
mat_dim_x = 512;
"""


def _ini(tmp_path: Path, text: str = TEMPLATE, name: str = "my_ddr4.ini") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _edit(key: str, value: str | None, text: str = TEMPLATE) -> str:
    """Replace (or with ``None`` delete) the line of ``key`` in the template."""
    lines = []
    for line in text.splitlines():
        if line.split("=")[0].strip() == key:
            if value is not None:
                lines.append(f"{key} = {value}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_dramsim3_ini(_ini(tmp_path, text))
    return info.value


# ---------------------------------------------------------------- the real files


@needs_reference
@pytest.mark.parametrize(("name", "preset_name"), REAL_FILES)
def test_real_file_matches_preset(name: str, preset_name: str) -> None:
    cfg = load_dramsim3_ini(REFERENCE / name)
    ref = preset(preset_name)
    assert cfg.name == Path(name).stem
    for f in dataclasses.fields(ref.timing):
        if f.name != "tCK_ns":
            assert getattr(cfg.timing, f.name) == getattr(ref.timing, f.name), f.name
    assert cfg.timing.tCK_ns == pytest.approx(ref.timing.tCK_ns, abs=0.0051)  # 2 decimals
    assert dataclasses.replace(cfg.org, ranks=1) == ref.org
    assert cfg.org.ranks == 2
    assert cfg.controller.page_policy == "open"
    assert cfg.controller.address_mapping == "rochrababgco"
    assert cfg.controller.read_queue_depth == cfg.controller.write_queue_depth == 32
    for key in ("VDD", "IDD0", "IPP0", "IDD2N", "IDD3N", "IDD4R", "IDD4W", "IDD5B", "IDD6"):
        assert cfg.power[key] == ref.power[key], key
    assert {"IDD2P", "IDD3P"} <= set(cfg.power)


@needs_reference
def test_x8_2400_exact() -> None:
    cfg = load_dramsim3_ini(REFERENCE / "DDR4_8Gb_x8_2400.ini")
    ref = preset("ddr4-2400-x8")
    assert cfg.timing == dataclasses.replace(ref.timing, tCK_ns=0.83)  # tCK kept as written
    assert cfg.timing.tRC == cfg.timing.tRAS + cfg.timing.tRP == 56
    assert cfg.org.ranks == 2  # channel_size 16384 MB / (8 x 1 GiB devices)
    assert cfg.org.channel_bytes == 16384 * 2**20
    assert cfg.power["IDD5B"] == 250 and cfg.power["IDD6"] == 30 and cfg.power["IDD3P"] == 37
    assert AddressMap(cfg).capacity == 16 * 2**30


@needs_reference
def test_x16_geometry_and_notes() -> None:
    result = read_dramsim3_ini(REFERENCE / "DDR4_8Gb_x16_2400.ini")
    org = result.config.org
    assert (org.bankgroups, org.banks_per_group, org.device_width, org.ranks) == (2, 4, 16, 2)
    assert result.extras == {"queue_structure": "PER_BANK", "cmd_queue_size": 8,
                             "refresh_policy": "RANK_LEVEL_STAGGERED"}
    assert any("tRFC2" in n for n in result.notes) and any("tWR2" in n for n in result.notes)


@needs_reference
def test_load_config_dispatches_ini_with_overrides() -> None:
    cfg = load_config(REFERENCE / "DDR4_8Gb_x8_3200.ini", channels=2)
    assert cfg.org.channels == 2 and cfg.timing.CL == 22 and cfg.name == "DDR4_8Gb_x8_3200"


# ---------------------------------------------------------------- syntax and mapping


def test_template_loads(tmp_path: Path) -> None:
    cfg = load_dramsim3_ini(_ini(tmp_path))
    assert cfg.name == "my_ddr4" and cfg.org.ranks == 1
    assert cfg.timing.tRC == 56 and cfg.timing.tMRD == 8 and cfg.timing.tMOD == 24


def test_case_insensitive_keys_and_inline_comments(tmp_path: Path) -> None:
    text = TEMPLATE.replace("tRCD = 17", "TRCD = 17 ; row to column").replace(
        "[timing]", "[Timing]").replace("[system]", "[SYSTEM]")
    text = text.replace("CL = 17", "cl=17;no space before comment")
    cfg = load_dramsim3_ini(_ini(tmp_path, text))
    assert cfg.timing.tRCD == 17 and cfg.timing.CL == 17


def test_parse_ini_comment_handling() -> None:
    sections = parse_ini("# c\n[A]\nk = 1; x\n; whole line\nj=2\n")
    assert {k: e.value for k, e in sections["a"].items()} == {"k": "1", "j": "2"}


def test_explicit_trc_used(tmp_path: Path) -> None:
    text = TEMPLATE.replace("tRP = 17\n", "tRP = 17\ntRC = 60\n")
    assert load_dramsim3_ini(_ini(tmp_path, text)).timing.tRC == 60


@pytest.mark.parametrize(("channel_size", "ranks"), [(8192, 1), (16384, 2), (32768, 4)])
def test_ranks_from_channel_size(tmp_path: Path, channel_size: int, ranks: int) -> None:
    cfg = load_dramsim3_ini(_ini(tmp_path, _edit("channel_size", str(channel_size))))
    assert cfg.org.ranks == ranks


def test_policies_mapped(tmp_path: Path) -> None:
    text = _edit("row_buf_policy", "CLOSE_PAGE", _edit("trans_queue_size", "16"))
    text = _edit("address_mapping", "rorabgbachco", _edit("queue_structure", "PER_RANK", text))
    text = _edit("refresh_policy", "rank_level_simultaneous", text)
    result = read_dramsim3_ini(_ini(tmp_path, text))
    c = result.config.controller
    assert c.page_policy == "closed" and c.address_mapping == "rorabgbachco"
    assert (c.read_queue_depth, c.write_queue_depth) == (16, 16)
    assert c.write_low_watermark < c.write_high_watermark <= 16
    assert result.extras["queue_structure"] == "PER_RANK"
    assert result.extras["refresh_policy"] == "RANK_LEVEL_SIMULTANEOUS"


@pytest.mark.parametrize("is_write", [False, True])
@pytest.mark.parametrize(("depth", "waits"), [(4, True), (5, False)])
def test_trans_queue_size_is_the_admission_capacity(tmp_path: Path, is_write: bool, depth: int,
                                                    waits: bool) -> None:
    """Five requests to one row at cycle 0: with ``trans_queue_size = 4`` the fifth waits for
    the first slot to free (the first column command, tRCD = 17 after the ACT at 0); one more
    slot and it is admitted at once."""
    cfg = load_dramsim3_ini(_ini(tmp_path, _edit("trans_queue_size", str(depth))))
    reqs = [(addr_of(cfg, row=3, col=c), is_write, 0) for c in range(5)]
    _, cmds, done = simulate(cfg, reqs)
    assert [(c.clk, c.cmd.name) for c in cmds[:2]] == [(0, "ACT"), (17, "WR" if is_write else "RD")]
    assert [r.admitted for r in done[:4]] == [0] * 4
    assert done[4].admitted == (17 if waits else 0)


@pytest.mark.parametrize(("depth", "admitted"), [(4, [18, 23, 29]), (5, [18, 18, 23])])
def test_trans_queue_size_binds_inside_a_run(tmp_path: Path, depth: int,
                                             admitted: list[int]) -> None:
    """Four reads to one row at 0 (RDs at 17, 23, 29, ...: tRCD, then tCCD_L = 6), three more
    arriving at 18 while the bursts stream: each waits for a slot, which the next RD frees.
    Depth 4: one slot free at 18 (the RD at 17), the next at 23, then 29; depth 5: two at 18."""
    cfg = load_dramsim3_ini(_ini(tmp_path, _edit("trans_queue_size", str(depth))))
    reqs = [(addr_of(cfg, row=3, col=c), False, 0) for c in range(4)]
    reqs += [(addr_of(cfg, row=3, col=c), False, 18) for c in range(4, 7)]
    _, cmds, done = simulate(cfg, reqs)
    assert [c.clk for c in cmds] == [0, 17, 23, 29, 35, 41, 47, 53]
    assert [r.admitted for r in done] == [0, 0, 0, 0, *admitted]


def test_bank_level_refresh_mapped_with_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="BANK_LEVEL_STAGGERED"):
        result = read_dramsim3_ini(_ini(tmp_path, _edit("refresh_policy", "BANK_LEVEL_STAGGERED")))
    assert result.config.controller.refresh
    assert any("all-bank refresh" in n for n in result.notes)


def test_system_defaults_follow_dramsim3(tmp_path: Path) -> None:
    text = TEMPLATE
    for key in ("channels", "bus_width", "address_mapping", "queue_structure", "refresh_policy",
                "row_buf_policy", "cmd_queue_size", "trans_queue_size"):
        text = _edit(key, None, text)
    result = read_dramsim3_ini(_ini(tmp_path, text))
    assert result.config.controller.address_mapping == "chrobabgraco"
    assert result.extras["cmd_queue_size"] == 16


def test_power_section_optional(tmp_path: Path) -> None:
    start, end = TEMPLATE.index("[power]"), TEMPLATE.index("[system]")
    cfg = load_dramsim3_ini(_ini(tmp_path, TEMPLATE[:start] + TEMPLATE[end:]))
    assert cfg.power == {}


# ---------------------------------------------------------------- errors name their field


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        (TEMPLATE.replace("tRCD = 17", "tRDC = 17"), "timing.tRDC", "unknown key"),
        (TEMPLATE.replace("channels = 1", "channles = 1"), "system.channles", "unknown key"),
        (TEMPLATE.replace("IDD0 = 48", "IDD00 = 48"), "power.IDD00", "unknown key"),
        (_edit("tFAW", None), "timing.tFAW", "missing"),
        (_edit("tCK", None), "timing.tCK", "missing"),
        (_edit("channel_size", None), "system.channel_size", "missing"),
        (_edit("rows", None), "dram_structure.rows", "missing"),
        (_edit("tRAS", "39.5"), "timing.tRAS", "expected an integer"),
        (_edit("tRAS", "abc"), "timing.tRAS", "expected an integer"),
        (_edit("tRAS", ""), "timing.tRAS", "empty value"),
        (_edit("tCK", "fast"), "timing.tCK", "expected a number"),
        (_edit("tCK", "0"), "timing.tCK", "> 0"),
        (_edit("IDD4R", "lots"), "power.IDD4R", "expected a number"),
        (_edit("protocol", "DDR3"), "dram_structure.protocol", "only DDR4"),
        (_edit("protocol", "HBM2"), "dram_structure.protocol", "only DDR4"),
        (_edit("protocol", "HMC") + "[hmc]\nnum_links = 4\n", "dram_structure.protocol", "DDR4"),
        (_edit("protocol", None), "dram_structure.protocol", "missing"),
        (_edit("device_width", "32"), "dram_structure.device_width", "x4, x8 or x16"),
        (_edit("bus_width", "60"), "system.bus_width", "multiple"),
        (_edit("channel_size", "12288"), "system.channel_size", "power-of-two"),
        (_edit("channel_size", "4096"), "system.channel_size", "power-of-two"),
        (_edit("address_mapping", "rochrababgcx"), "system.address_mapping", "exactly once"),
        (_edit("row_buf_policy", "ADAPTIVE"), "system.row_buf_policy", "OPEN_PAGE"),
        (_edit("refresh_policy", "NONE"), "system.refresh_policy", "unknown value"),
        (_edit("queue_structure", "PER_CHIP"), "system.queue_structure", "unknown value"),
        (_edit("trans_queue_size", "0"), "system.trans_queue_size", ">= 1"),
        (_edit("tRAS", "10"), "timing.tRAS", "tRCD"),  # our validator, translated back
        (_edit("rows", "65535"), "dram_structure.rows", "power of two"),
        (_edit("channels", "3"), "system.channels", "power of two"),
        (_edit("BL", "16"), "dram_structure.BL", "BL"),
        (TEMPLATE.replace("[timing]", "[timming]"), "timming", "unknown section"),
        (TEMPLATE.replace("tRP = 17\n", "tRP = 17\ntrp = 18\n"), "timing.trp", "given twice"),
        (TEMPLATE.replace("tRP = 17\n", "tRP 17\n"), "timing", "key = value"),
        (TEMPLATE.replace("[timing]", "[timing"), "section", "malformed"),
        ("protocol = DDR4\n" + TEMPLATE, "protocol", "outside"),
        (TEMPLATE.replace("[system]", "[sys]"), "sys", "unknown section"),
        (TEMPLATE.replace("BL = 8", "BL = 8\nbankgroup_enable = no"),
         "dram_structure.bankgroup_enable", "bank groups"),
    ],
)
def test_bad_input_names_field(tmp_path: Path, text: str, field: str, fragment: str) -> None:
    err = _error(tmp_path, text)
    assert err.field == field, err
    assert fragment in err.message, err


def test_error_mentions_file_and_line(tmp_path: Path) -> None:
    err = _error(tmp_path, TEMPLATE.replace("tRCD = 17", "tRCD = x"))
    line = TEMPLATE.splitlines().index("tRCD = 17") + 1
    assert f"my_ddr4.ini:{line}" in err.message


def test_missing_section(tmp_path: Path) -> None:
    start, end = TEMPLATE.index("[system]"), TEMPLATE.index("[other]")
    err = _error(tmp_path, TEMPLATE[:start] + TEMPLATE[end:])
    assert err.field == "system"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_dramsim3_ini(tmp_path / "nope.ini")


def test_ignored_keys_accepted_with_note(tmp_path: Path) -> None:
    text = TEMPLATE.replace("trans_queue_size = 32", "trans_queue_size = 32\nunified_queue = false")
    result = read_dramsim3_ini(_ini(tmp_path, text))
    assert any(n.startswith("system.unified_queue ignored") for n in result.notes)
    assert any("[thermal] ignored" in n for n in result.notes)
