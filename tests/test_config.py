"""Configuration presets and validation: every error names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradpimsim.config import ConfigError, load_config, preset, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_is_consistent(name: str) -> None:
    cfg = preset(name)
    t, o = cfg.timing, cfg.org
    assert t.tRC == t.tRAS + t.tRP
    assert o.burst_bytes == 64 and o.bursts_per_row == 128
    assert o.bankgroups == (2 if o.device_width == 16 else 4)
    assert o.device_bits == 8 * 2**30  # 8Gb dies


def test_reference_numbers_of_the_speed_bins() -> None:
    a, b = preset("ddr4-2400").timing, preset("ddr4-3200").timing
    assert (a.CL, a.tRCD, a.tRP, a.tRAS, a.tRFC, a.tREFI) == (17, 17, 17, 39, 420, 9360)
    assert (b.CL, b.tRCD, b.tRP, b.tRAS, b.tRFC, b.tREFI) == (22, 22, 22, 52, 560, 12480)
    assert round(preset("ddr4-2400").peak_bandwidth_gbs, 1) == 19.2
    assert round(preset("ddr4-3200").peak_bandwidth_gbs, 1) == 25.6


def test_system_size_suffixes() -> None:
    cfg = preset("ddr4-3200-x16-2r-4ch")
    assert (cfg.org.ranks, cfg.org.channels, cfg.org.device_width) == (2, 4, 16)
    assert load_config("ddr4-2400", channels=2, ranks=2).org.channels == 2


@pytest.mark.parametrize("overrides,field", [
    ({"tRAS": 10}, "timing.tRAS"),
    ({"tRC": 40}, "timing.tRC"),
    ({"tCCD_L": 3}, "timing.tCCD_L"),
    ({"tREFI": 100}, "timing.tREFI"),
    ({"bankgroups": 4, "device_width": 16}, "org.bankgroups"),
    ({"channels": 3}, "org.channels"),
    ({"address_mapping": "rochrababg"}, "controller.address_mapping"),
    ({"scheduler": "lifo"}, "controller.scheduler"),
    ({"write_high_watermark": 40}, "controller.write_high_watermark"),
    ({"max_postponed_refreshes": 9}, "controller.max_postponed_refreshes"),
    ({"max_postponed_refreshes": 0}, "controller.max_postponed_refreshes"),
    ({"max_postponed_refreshes": -1}, "controller.max_postponed_refreshes"),
    ({"tRCD": 17.5}, "timing.tRCD"),
])
def test_inconsistent_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        preset("ddr4-2400").with_overrides(**overrides)
    assert err.value.field == field
    assert field in str(err.value)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="ddr4-2400-x8"):
        preset("ddr5-4800")


def test_toml_file_with_base_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('base = "ddr4-3200-x16"\n[controller]\npage_policy = "closed"\n'
                    '[timing]\ntRCD = 24\n')
    cfg = load_config(path)
    assert cfg.org.device_width == 16 and cfg.controller.page_policy == "closed"
    assert cfg.timing.tRCD == 24
    path.write_text('base = "ddr4-2400"\n[timing]\ntRDC = 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.field == "timing.tRDC"


def test_presets_command(capsys: pytest.CaptureFixture[str]) -> None:
    from gradpimsim.cli import main

    assert main(["presets"]) == 0
    assert "ddr4-3200-x16" in capsys.readouterr().out
    assert main(["presets", "--fields"]) == 0
    out = capsys.readouterr().out
    assert "tRCD" in out and "page_policy" in out
    assert main(["presets", "ddr4-2400-2r"]) == 0
    assert "org.ranks" in capsys.readouterr().out
    assert main(["presets", "ddr4-1600"]) == 2
