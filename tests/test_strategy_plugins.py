from __future__ import annotations

from pathlib import Path

import pytest

from tui_trader.setup import load_strategies
from tui_trader.strategy import ParamsError, discover


def test_builtin_strategies_load_cleanly() -> None:
    registry = load_strategies()
    assert "ema_trend" in registry.names()
    assert registry.errors == []


def test_broken_plugins_are_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "syntax.py").write_text("def oops(:\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "empty.py").write_text("X = 1\n")
    (tmp_path / "no_defaults.py").write_text(
        "from tui_trader.strategy import Strategy, StrategyParams\n"
        "class P(StrategyParams):\n    n: int\n"
        "class S(Strategy):\n    name = 'nodef'\n    Params = P\n"
        "    warmup = 1\n    def update(self, c): pass\n    def ready(self): return True\n    def scan(self, ctx): return None\n")
    (tmp_path / "good.py").write_text((Path(__file__).parents[1] / "strategies" / "ema_trend.py").read_text()
                                      .replace('name = "ema_trend"', 'name = "ema_copy"'))
    registry = load_strategies(tmp_path)
    assert {"ema_trend", "ema_copy"} <= set(registry.names())
    by_file = {Path(e.source).name: e.error for e in registry.errors}
    assert by_file["syntax.py"].startswith("SyntaxError")
    assert by_file["raises.py"] == "RuntimeError: boom at import"
    assert "defines no Strategy subclass" in by_file["empty.py"]
    assert "needs a default" in by_file["no_defaults.py"]
    assert "nodef" not in registry.names()


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    registry = discover([tmp_path / "nope"])
    assert registry.errors[0].error == "not a directory"


def test_params_are_validated_with_field_names() -> None:
    registry = load_strategies()
    with pytest.raises(ParamsError) as info:
        registry.make("ema_trend", {"fast": 0}, "1m")
    assert info.value.lines[0].startswith("params.fast: Input should be greater than or equal to 2")
    with pytest.raises(ValueError, match="unknown strategy 'x'"):
        registry.make("x", {}, "1m")


def test_strategies_list_shows_parameters_bounds_and_confirmations(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from tui_trader.cli import app

    (tmp_path / "broken.py").write_text("raise ImportError('no such lib')\n")
    result = CliRunner().invoke(app, ["strategies", "list", "--strategies-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for name in ("ema_trend", "range_reversion", "donchian_breakout", "reversal", "mtf_stochrsi", "sma_cross", "adaptive"):
        assert f"\n{name}: " in f"\n{text}", name
    assert "  fast               int    default 12       >= 2 <= 200" in text
    assert "confirmations: di_agrees, close_beyond_slow, volume_above_average" in text
    assert "always in the market" in text and "built from ema_trend, range_reversion, donchian_breakout" in text
    assert "broken plugin" in result.stderr and "ImportError: no such lib" in result.stderr
    listed = json.loads(CliRunner().invoke(app, ["strategies", "list", "--json"]).stdout)
    ema = next(s for s in listed["strategies"] if s["name"] == "ema_trend")
    assert {"name": "slow", "type": "int", "default": 26, "bounds": {">=": 3, "<=": 400}, "description": "slow EMA period"} in ema["params"]
    mtf = next(s for s in listed["strategies"] if s["name"] == "mtf_stochrsi")
    assert mtf["multi_timeframe"] is True and listed["broken"] == []
