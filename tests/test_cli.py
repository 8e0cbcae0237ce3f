"""The `tui-trader` command line: bad input is refused with a field-level message and
exit code 2 without touching the database; the bot commands work on a state
directory with no engine running; --state-dir / --config and their environment
variables are honoured.

Mostly in-process through typer's CliRunner; a few subprocesses where the real
process (console script, exit code, environment) matters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tui_trader.cli import app
from tui_trader.config import DEMO_CONFIG, RISK_PRESETS

DB = "tui-trader.sqlite3"
DEMO = (Path(__file__).parent / "cli_config.toml").read_text()  # fixed text: the bad-config cases edit it
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(isolated: None) -> None:
    """Opt in to the shared isolation (clean TUI_TRADER_* environment, scratch cwd)."""


def cli(*args: Any, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def add_args(name: str = "b1", symbol: str = "BTCUSDT", timeframe: str = "5m", capital: str = "1000",
             strategy: str = "ema_trend", *extra: str) -> list[str]:
    return ["bots", "add", "--name", name, "--symbol", symbol, "--timeframe", timeframe, "--capital", capital,
            "--strategy", strategy, *extra]


def demo_variant(old: str, new: str) -> str:
    assert DEMO.count(old) == 1, f"{old!r} must occur once in cli_config.toml"
    return DEMO.replace(old, new)


# Each bad config: (id, TOML text, substrings the message must contain).
BAD_CONFIGS = [
    ("invalid-toml", demo_variant('capital = "3000"', 'capital = "3000'), ["not valid TOML", "line 51"]),
    ("unknown-strategy", demo_variant('strategy = "ema_trend"\nparams = { fast = 5', 'strategy = "nope"\nparams = { fast = 5'),
     ["bots[1].strategy", "unknown strategy 'nope'", "known: ", "ema_trend"]),
    ("negative-capital", demo_variant('capital = "3000"', 'capital = "-3000"'), ["bots[1].capital", "greater than 0", "-3000"]),
    ("unknown-timeframe", demo_variant('timeframe = "5m"', 'timeframe = "7m"'), ["bots[3].timeframe", "'7m'"]),
    ("duplicate-name", demo_variant('name = "eth-trend-15m"', 'name = "btc-scalp-1m"'), ["bots[4].name", "'btc-scalp-1m'", "used twice"]),
]
COMMANDS = {"bots-list": ["bots", "list"], "no-ui": ["--no-ui"]}


# -- state directories and "untouched" -------------------------------------------------------------------


@pytest.fixture
def fresh_state(tmp_path: Path) -> Path:
    return tmp_path / "fresh-state"


@pytest.fixture
def existing_state(tmp_path: Path) -> Path:
    """A state directory created by a previous valid `bots add`."""
    state = tmp_path / "existing-state"
    result = cli(*add_args("keeper", "ETHUSDT", "15m", "2500", "ema_trend", "--risk-profile", "cautious"), "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert (state / DB).exists()
    return state


@pytest.fixture(params=["no-state", "existing-state"])
def state(request: pytest.FixtureRequest, fresh_state: Path, existing_state: Path) -> Path:
    return fresh_state if request.param == "no-state" else existing_state


class Untouched:
    """What the state directory held before a refused command; check() after it."""

    def __init__(self, state_dir: Path, state_db: Callable[[Path], Any]) -> None:
        self.db = state_db(state_dir)
        self.state_dir = state_dir
        self.files = self.db.files()
        self.counts = self.db.counts() if self.files else None

    def check(self) -> None:
        if self.files is None:
            assert not self.state_dir.exists(), f"a refused command created {sorted(p.name for p in self.state_dir.rglob('*'))}"
            return
        assert self.db.files() == self.files, "a refused command changed the state directory's bytes"
        assert self.db.counts() == self.counts


@pytest.fixture
def untouched(state_db: Callable[[Path], Any]) -> Callable[[Path], Untouched]:
    return lambda state_dir: Untouched(state_dir, state_db)


def assert_refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in the message:\n{result.stderr}"
    assert result.stdout == "", f"a refusal printed to stdout: {result.stdout!r}"


# -- bad configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
@pytest.mark.parametrize(("text", "needles"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_refused_before_the_database(tmp_path: Path, state: Path, untouched: Callable[[Path], Untouched],
                                                   command: str, text: str, needles: list[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    before = untouched(state)
    result = cli(*COMMANDS[command], "--config", config, "--state-dir", state)
    assert_refused(result, f"invalid configuration in {config}", *needles)
    before.check()


def test_duplicate_bot_name_in_config_names_the_field(tmp_path: Path, fresh_state: Path) -> None:
    config = tmp_path / "dup.toml"
    config.write_text(BAD_CONFIGS[4][1])
    result = cli("bots", "list", "--config", config, "--state-dir", fresh_state)
    assert result.exit_code == 2
    assert "  bots[4].name: bot name 'btc-scalp-1m' is used twice" in result.stderr.splitlines(), result.stderr


def test_invalid_toml_no_ui_real_process(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    """The console script itself: exit code 2, the message on stderr, no state directory."""
    config = tmp_path / "broken.toml"
    config.write_text("[app\nstate_dir = 'x'\n")
    state = tmp_path / "state"
    for command in (["--no-ui"], ["bots", "list"]):
        result = run_cli(*command, "--config", config, "--state-dir", state)
        assert result.returncode == 2, result
        assert f"invalid configuration in {config}" in result.stderr and "not valid TOML" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
        assert not state.exists()


def test_unknown_exchange_kind_is_refused(tmp_path: Path, fresh_state: Path) -> None:
    config = tmp_path / "testnet.toml"
    config.write_text(demo_variant('kind = "paper"', 'kind = "testnet"'))
    assert_refused(cli("--no-ui", "--config", config, "--state-dir", fresh_state), "exchange.kind", "'testnet'")
    assert not fresh_state.exists()


# -- bad `bots add` -------------------------------------------------------------------------------------------------

BAD_ADDS = [
    ("unknown-strategy", add_args(strategy="nope"), ["bot.strategy", "unknown strategy 'nope'", "known: ", "ema_trend"]),
    ("negative-capital", add_args(capital="-5"), ["capital: ", "greater than 0", "'-5'"]),
    ("zero-capital", add_args(capital="0"), ["capital: ", "greater than 0"]),
    ("unknown-timeframe", add_args(timeframe="2m"), ["timeframe: ", "'2m'"]),
    ("bad-param-value", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--param", "fast=abc"),
     ["bot.params.fast", "valid integer", "'abc'"]),
    ("unknown-param", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--param", "fsat=5"), ["bot.params.fsat"]),
    ("param-without-value", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--param", "fast"), ["--param 'fast'", "key=value"]),
    ("fast-above-slow", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--param", "fast=30", "--param", "slow=20"),
     ["bot.params", "fast (30) must be below slow (20)"]),
    ("fast-equals-slow", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--param", "fast=20", "--param", "slow=20"),
     ["bot.params", "fast (20) must be below slow (20)"]),
    ("unknown-risk-profile", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--risk-profile", "yolo"),
     ["bot.risk_profile", "unknown risk profile 'yolo'", "aggressive, balanced, cautious"]),
    ("symbol-not-in-market", add_args(symbol="XRPUSDT"), ["bot.symbol", "XRPUSDT is not in the synthetic market"]),
    ("symbol-without-rules", add_args(symbol="DOGEUSDT"), ["bot.symbol", "no instrument rules for DOGEUSDT"]),
    ("malformed-symbol", add_args(symbol="btc"), ["symbol: ", "'btc'"]),
    ("bad-name", add_args(name="no spaces!"), ["name: ", "'no spaces!'"]),
    ("negative-confirmations", add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--confirmations", "-1"), ["confirmations: "]),
]


@pytest.mark.parametrize(("args", "needles"), [c[1:] for c in BAD_ADDS], ids=[c[0] for c in BAD_ADDS])
def test_bad_bots_add_is_refused(state: Path, untouched: Callable[[Path], Untouched], args: list[str], needles: list[str]) -> None:
    before = untouched(state)
    result = cli(*args, "--state-dir", state)
    assert_refused(result, *needles)
    before.check()


def test_second_add_of_a_name_is_refused(existing_state: Path, untouched: Callable[[Path], Untouched]) -> None:
    before = untouched(existing_state)
    result = cli(*add_args("keeper", "BTCUSDT", "1m", "10", "ema_trend"), "--state-dir", existing_state)
    assert_refused(result, "a bot named 'keeper' already exists")
    before.check()


# -- good paths -----------------------------------------------------------------------------------------------------


def bots_json(state: Path, **kw: Any) -> list[dict[str, Any]]:
    result = cli("bots", "list", "--json", "--state-dir", state, **kw)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def risk_text(name: str) -> str:
    p = RISK_PRESETS[name]
    return (f"{name} ({p.risk_per_trade_pct:g}%/trade, stop {p.stop_atr_mult:g}xATR, TP {p.take_profit_r:g}R,"
            f" lev {p.max_leverage:g}x, pos {p.max_position_pct:g}%)")


def test_add_then_list_shows_the_bot_with_its_risk_settings(tmp_path: Path) -> None:
    state = tmp_path / "s"
    result = cli(*add_args("b1", "BTCUSDT", "5m", "1000", "ema_trend", "--risk-profile", "cautious",
                           "--param", "fast=5", "--param", "slow=20", "--confirmations", "1"), "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "added b1"
    assert (state / DB).exists()

    table = cli("bots", "list", "--state-dir", state)
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "SYMBOL", "TF", "STRATEGY", "STATE", "RISK", "LIMITS", "CAPITAL", "POSITION", "REALIZED",
                              "FEES", "TRADES"]
    assert len(rows) == 1  # bots add does not add the demo config's bots (only an engine start does)
    row = rows[0]
    assert row.split()[:5] == ["b1", "BTCUSDT", "5m", "ema_trend", "RUNNING"]
    assert risk_text("cautious") in row
    assert "cautious (0.5%/trade, stop 2.5xATR, TP 2R, lev 2x, pos 100%)" in row
    assert "BE 1R, trail 2.5xATR from 1.5R, open<=10, day -2%, DD -6%, cooldown 3L/60c" in row
    assert re.search(r"\b1000\s+flat\s+\+0\.00\s+0\.00\s+0\s*$", row), row

    (bot,) = bots_json(state)
    assert bot == {
        "name": "b1", "symbol": "BTCUSDT", "tf": "5m", "strategy": "ema_trend", "params": {"fast": 5, "slow": 20},
        "confirmations": 1, "state": "RUNNING", "risk": risk_text("cautious"),
        "limits": "BE 1R, trail 2.5xATR from 1.5R, open<=10, day -2%, DD -6%, cooldown 3L/60c",
        "risk_settings": RISK_PRESETS["cautious"].model_dump(mode="json"), "capital": "1000", "position": "flat",
        "realized": "+0.00", "fees": "0.00", "trades": 0,
    }


def test_list_of_an_empty_state(tmp_path: Path) -> None:
    state = tmp_path / "s"
    result = cli("bots", "list", "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no bots"
    assert bots_json(state) == []


def test_edit_changes_params_and_keeps_the_rest(existing_state: Path, untouched: Callable[[Path], Untouched]) -> None:
    result = cli("bots", "edit", "keeper", "--param", "fast=7", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "updated keeper"
    (bot,) = bots_json(existing_state)
    assert bot["params"] == {"fast": 7}
    assert (bot["symbol"], bot["tf"], bot["capital"], bot["risk"]) == ("ETHUSDT", "15m", "2500", risk_text("cautious"))

    result = cli("bots", "edit", "keeper", "--param", "slow=30", "--capital", "3000", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    (bot,) = bots_json(existing_state)
    assert bot["params"] == {"fast": 7, "slow": 30} and bot["capital"] == "3000"

    # an invalid edit is refused and changes nothing
    before = untouched(existing_state)
    assert_refused(cli("bots", "edit", "keeper", "--param", "fast=40", "--state-dir", existing_state),
                   "bot.params", "fast (40) must be below slow (30)")
    before.check()
    assert_refused(cli("bots", "edit", "nobody", "--param", "fast=3", "--state-dir", existing_state), "no bot named 'nobody'")
    before.check()


def test_pause_and_resume_without_an_engine_apply_directly(existing_state: Path, state_db: Callable[[Path], Any]) -> None:
    db = state_db(existing_state)
    result = cli("bots", "pause", "keeper", "--reason", "lunch", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "keeper: RUNNING -> PAUSED (no engine running; applied to the database)"
    assert bots_json(existing_state)[0]["state"] == "PAUSED (lunch)"
    assert db.query("SELECT state, state_reason FROM bots WHERE name = 'keeper'") == [{"state": "PAUSED", "state_reason": "lunch"}]

    # pausing twice is refused
    assert_refused(cli("bots", "pause", "keeper", "--state-dir", existing_state), "keeper is PAUSED; only a RUNNING bot can be paused")

    result = cli("bots", "resume", "keeper", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "keeper: PAUSED -> RUNNING (no engine running; applied to the database)"
    assert bots_json(existing_state)[0]["state"] == "RUNNING"
    assert_refused(cli("bots", "resume", "keeper", "--state-dir", existing_state), "keeper is RUNNING; nothing to resume")
    assert_refused(cli("bots", "pause", "ghost", "--state-dir", existing_state), "no bot named 'ghost'")

    events = db.query("SELECT command, source, reason, from_state, to_state, status, bot_id FROM control_events ORDER BY id")
    bot_id = db.query("SELECT id FROM bots WHERE name = 'keeper'")[0]["id"]
    assert events == [
        {"command": "pause", "source": "operator:cli", "reason": "lunch", "from_state": "RUNNING", "to_state": "PAUSED",
         "status": "applied", "bot_id": bot_id},
        {"command": "resume", "source": "operator:cli", "reason": "", "from_state": "PAUSED", "to_state": "RUNNING",
         "status": "applied", "bot_id": bot_id},
    ]


def test_remove(existing_state: Path, state_db: Callable[[Path], Any]) -> None:
    result = cli("bots", "remove", "keeper", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "removed keeper"
    assert bots_json(existing_state) == []
    # its history stays: the row is marked removed, not deleted
    (row,) = state_db(existing_state).query("SELECT name, removed_ts FROM bots")
    assert row["name"] == "keeper" and row["removed_ts"] is not None
    assert_refused(cli("bots", "remove", "keeper", "--state-dir", existing_state), "no bot named 'keeper'")
    # the name is free again
    assert cli(*add_args("keeper", "BTCUSDT", "1m", "10", "ema_trend"), "--state-dir", existing_state).exit_code == 0
    assert [b["name"] for b in bots_json(existing_state)] == ["keeper"]


def test_decisions_of_a_bot_without_decisions_print_nothing(existing_state: Path) -> None:
    result = cli("decisions", "keeper", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    result = cli("decisions", "keeper", "--type", "trade_entered", "--type", "NO_SETUP", "--state-dir", existing_state)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert_refused(cli("decisions", "ghost", "--state-dir", existing_state), "no bot named 'ghost'")


def test_decisions_with_an_unknown_type(state: Path, untouched: Callable[[Path], Untouched]) -> None:
    before = untouched(state)
    result = cli("decisions", "keeper", "--type", "BOGUS", "--state-dir", state)
    assert_refused(result, "--type", "unknown BOGUS", "TRADE_ENTERED")
    before.check()


def test_bad_run_options_are_refused_before_anything_starts(fresh_state: Path) -> None:
    assert_refused(cli("--no-ui", "--log-format", "xml", "--state-dir", fresh_state), "--log-format")
    assert_refused(cli("--color", "rainbow", "--state-dir", fresh_state), "--color")
    assert_refused(cli("--ui-hz", "0", "--state-dir", fresh_state), "--ui-hz")
    assert not fresh_state.exists()


# -- --state-dir, --config and their environment variables -------------------------------------------------------------


def test_state_dir_env_var_is_honoured(tmp_path: Path) -> None:
    env_state, flag_state = tmp_path / "from-env", tmp_path / "from-flag"
    env = {"TUI_TRADER_STATE_DIR": str(env_state)}
    assert cli(*add_args("e1"), env=env).exit_code == 0
    assert (env_state / DB).exists()
    assert not (Path.cwd() / "state").exists()  # not the config's default state_dir
    assert [b["name"] for b in json.loads(cli("bots", "list", "--json", env=env).stdout)] == ["e1"]
    # the option wins over the variable
    assert cli(*add_args("f1"), "--state-dir", flag_state, env=env).exit_code == 0
    assert [b["name"] for b in bots_json(flag_state, env=env)] == ["f1"]
    assert [b["name"] for b in json.loads(cli("bots", "list", "--json", env=env).stdout)] == ["e1"]


def test_default_state_dir_is_the_configs(tmp_path: Path) -> None:
    """Without --state-dir or the variable: app.state_dir of the config (relative to the cwd)."""
    config = tmp_path / "own.toml"
    config.write_text(demo_variant('state_dir = "state"', f'state_dir = "{tmp_path / "cfg-state"}"'))
    assert cli(*add_args("c1"), "--config", config).exit_code == 0
    assert (tmp_path / "cfg-state" / DB).exists()
    assert cli(*add_args("c2")).exit_code == 0  # the built-in demo: ./state
    assert (Path.cwd() / "state" / DB).exists()


def test_config_env_var_is_honoured(tmp_path: Path, untouched: Callable[[Path], Untouched]) -> None:
    state = tmp_path / "s"
    custom = tmp_path / "custom.toml"
    custom.write_text(DEMO + '\n[risk_profiles.steady]\nrisk_per_trade_pct = 0.25\nstop_atr_mult = 3\ntake_profit_r = 1.5\n'
                      'max_leverage = 1\nmax_position_pct = 50\n\n[[market.symbols]]\nsymbol = "XRPUSDT"\nstart_price = 0.5\n')
    args = add_args("x1", "XRPUSDT", "1m", "500", "ema_trend", "--risk-profile", "steady")

    # the built-in demo knows neither the profile nor the symbol
    before = untouched(state)
    assert_refused(cli(*args, "--state-dir", state), "bot.risk_profile", "bot.symbol")
    before.check()

    env = {"TUI_TRADER_CONFIG": str(custom)}
    result = cli(*args, "--state-dir", state, env=env)
    assert result.exit_code == 0, result.output
    (bot,) = bots_json(state, env=env)
    assert bot["risk"] == "steady (0.25%/trade, stop 3xATR, TP 1.5R, lev 1x, pos 50%)" and bot["limits"] == "-"

    # a broken config named by the variable is refused, and --config wins over the variable
    broken = tmp_path / "broken.toml"
    broken.write_text("[[bots]\n")
    before = untouched(state)
    assert_refused(cli("bots", "list", "--state-dir", state, env={"TUI_TRADER_CONFIG": str(broken)}),
                   f"invalid configuration in {broken}", "not valid TOML")
    before.check()
    result = cli("bots", "list", "--json", "--config", custom, "--state-dir", state, env={"TUI_TRADER_CONFIG": str(broken)})
    assert result.exit_code == 0, result.output


def test_environment_variables_in_a_real_process(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    state = tmp_path / "s"
    env = {"TUI_TRADER_STATE_DIR": str(state)}
    result = run_cli(*add_args("p1", "SOLUSDT", "5m", "750", "ema_trend", "--risk-profile", "aggressive"), env=env)
    assert result.returncode == 0, result.stderr
    result = run_cli("bots", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    (bot,) = json.loads(result.stdout)
    assert (bot["name"], bot["risk"]) == ("p1", risk_text("aggressive"))
    bad = tmp_path / "bad.toml"
    bad.write_text("= nope")
    result = run_cli("bots", "list", env={"TUI_TRADER_STATE_DIR": str(state), "TUI_TRADER_CONFIG": str(bad)})
    assert result.returncode == 2 and f"invalid configuration in {bad}" in result.stderr


# -- a strategy plugin from --strategies-dir ---------------------------------------------------------------------------------


@pytest.fixture
def plugin_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A plugin directory with `my_trend` (a renamed copy of ema_trend), a config whose bots[1] uses it,
    and a state directory holding a bot that uses it."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    source = (DEMO_CONFIG.parent.parent / "strategies" / "ema_trend.py").read_text()
    assert source.count('name = "ema_trend"') == 1
    (plugins / "my_trend.py").write_text(source.replace('name = "ema_trend"', 'name = "my_trend"').replace("class EmaTrend(", "class MyTrend("))
    config = tmp_path / "plugin.toml"
    config.write_text(demo_variant('strategy = "ema_trend"\nparams = { fast = 5', 'strategy = "my_trend"\nparams = { fast = 5'))
    state = tmp_path / "s"
    result = cli(*add_args("mine", "BTCUSDT", "1m", "100", "my_trend"), "--strategies-dir", plugins, "--config", config, "--state-dir", state)
    assert result.exit_code == 0, result.output
    return plugins, config, state


def test_plugin_strategy_with_strategies_dir(plugin_setup: tuple[Path, Path, Path], untouched: Callable[[Path], Untouched]) -> None:
    plugins, config, state = plugin_setup
    result = cli("bots", "edit", "mine", "--param", "fast=7", "--strategies-dir", plugins, "--config", config, "--state-dir", state)
    assert result.exit_code == 0, result.output
    # without the plugin directory the strategy is unknown, and the refusal lists what is known
    before = untouched(state)
    assert_refused(cli(*add_args("mine2", "BTCUSDT", "1m", "100", "my_trend"), "--state-dir", state),
                   "bot.strategy", "unknown strategy 'my_trend'", "known: ", "ema_trend")
    assert_refused(cli("bots", "list", "--config", config, "--state-dir", state), "bots[1].strategy", "unknown strategy 'my_trend'")
    before.check()


def test_operator_commands_work_with_a_plugin_config(plugin_setup: tuple[Path, Path, Path]) -> None:
    plugins, config, state = plugin_setup

    def works(*args: Any) -> bool:
        return any(cli(*args, *extra, "--config", config, "--state-dir", state).exit_code == 0
                   for extra in ([], ["--strategies-dir", str(plugins)]))

    assert works("bots", "list")
    assert works("bots", "pause", "mine")
    assert works("decisions", "mine")
