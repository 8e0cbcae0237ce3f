from __future__ import annotations

from pathlib import Path

import pytest

from tui_trader.config import DEMO_CONFIG, ConfigError, load_config, parse_config, validate_bot
from tui_trader.setup import check_config, load_strategies

MARKET = {"source": "synthetic", "symbols": [{"symbol": "BTCUSDT", "start_price": 60000}]}
BOT = {"name": "b1", "symbol": "BTCUSDT", "timeframe": "5m", "capital": "1000", "strategy": "ema_trend"}


def errors(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfg = parse_config(data, "t")
        check_config(cfg, load_strategies(), "t")
    return info.value.errors


def test_demo_config_is_valid_and_demonstrative() -> None:
    cfg = load_config(None)
    check_config(cfg, load_strategies(), str(DEMO_CONFIG))
    assert cfg.exchange.kind == "paper" and cfg.market.source == "synthetic"
    assert len(cfg.market.symbols) >= 3 and len(cfg.bots) >= 4
    assert len({b.symbol for b in cfg.bots}) >= 3
    assert len({b.timeframe for b in cfg.bots}) >= 3
    assert len({b.risk_profile for b in cfg.bots}) == 3
    assert len({(b.strategy, tuple(sorted(b.params.items()))) for b in cfg.bots}) == len(cfg.bots)
    assert len({b.strategy for b in cfg.bots}) >= 5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"capital": "-5"}, "bots[0].capital: Input should be greater than 0"),
        ({"timeframe": "2m"}, "bots[0].timeframe: Input should be"),
        ({"strategy": "nope"}, "bots[0].strategy: unknown strategy 'nope' (known: "),
        ({"risk_profile": "yolo"}, "bots[0].risk_profile: unknown risk profile 'yolo'"),
        ({"symbol": "ETHUSDT"}, "bots[0].symbol: ETHUSDT is not in the synthetic market"),
        ({"params": {"fast": 30, "slow": 20}}, "bots[0].params: fast (30) must be below slow (20)"),
        ({"params": {"fast": "x"}}, "bots[0].params.fast: Input should be a valid integer"),
        ({"params": {"speed": 3}}, "bots[0].params.speed: Extra inputs are not permitted"),
        ({"name": "bad name!"}, "bots[0].name: String should match pattern"),
    ],
)
def test_each_bad_bot_field_is_named(change: dict, expected: str) -> None:
    lines = errors({"market": MARKET, "bots": [{**BOT, **change}]})
    assert any(line.startswith(expected) for line in lines), lines


def test_duplicate_names_and_unknown_sections() -> None:
    assert any("used twice" in e for e in errors({"market": MARKET, "bots": [BOT, BOT]}))
    assert any(e.startswith("colour: Extra inputs") for e in errors({"market": MARKET, "colour": "red"}))
    assert any(e.startswith("exchange.kind: 'mainnet' is not available") for e in
               errors({"market": MARKET, "exchange": {"kind": "mainnet"}}))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[market\nsource = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")


def test_custom_risk_profile_and_bot_validation() -> None:
    cfg = parse_config({"market": MARKET, "risk_profiles": {"mine": {"risk_per_trade_pct": 0.3, "stop_atr_mult": 3,
                        "take_profit_r": 1, "max_leverage": 2, "max_position_pct": 50}}, "bots": [{**BOT, "risk_profile": "mine"}]}, "t")
    assert cfg.profile("mine").risk_per_trade_pct == 0.3  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as info:
        parse_config({"market": MARKET, "risk_profiles": {"balanced": cfg.risk_profiles["mine"].model_dump()}}, "t")
    assert "built-in preset" in info.value.errors[0]
    with pytest.raises(ConfigError) as info:
        validate_bot({**BOT, "capital": "0"})
    assert info.value.errors[0].startswith("bot.capital: Input should be greater than 0")
