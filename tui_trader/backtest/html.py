"""The HTML report: one self-contained file (no CDN, no network), its charts drawn
as SVG by a small script written here: equity with drawdown, price with entry
and exit markers; hover for values, drag to zoom, double-click to reset."""

from __future__ import annotations

import html
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_trader.backtest.text import downsample, duration, iso, money, num, pct

if TYPE_CHECKING:
    from tui_trader.backtest.report import Report

CHART_POINTS = 2_000  # per series; the CSV files have every bar
MAX_MARKERS = 2_000
TABLE_TRADES = 500

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} .sub{color:#666;margin-bottom:16px}
table.kv{border-collapse:collapse;margin-bottom:20px} table.kv td{padding:3px 14px 3px 0}
table.kv td:nth-child(odd){color:#555} table.kv td:nth-child(even){font-weight:600;text-align:right;padding-right:28px}
.chart{background:#fff;border:1px solid #ddd;margin-bottom:16px;position:relative}
.chart h2{font-size:14px;margin:6px 10px} svg{display:block;width:100%;user-select:none}
.tip{position:absolute;pointer-events:none;background:#333;color:#fff;font-size:12px;padding:3px 6px;border-radius:3px;display:none}
table.trades{border-collapse:collapse;font-size:12px} table.trades td,table.trades th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}
.pos{color:#18794e} .neg{color:#c62828} .note{color:#666;font-size:12px}
"""

_JS = """
(function(){
const D = JSON.parse(document.getElementById('data').textContent);
const fmtT = t => new Date(t).toISOString().slice(0,16).replace('T',' ');
function chart(el, series, markers, label){
  const W = 1000, H = 260, L = 70, R = 10, T = 10, B = 24;
  let x0 = Math.min(...series.map(s => s.t[0])), x1 = Math.max(...series.map(s => s.t[s.t.length-1]));
  const full = [x0, x1];
  const svgNS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNS, 'svg'); svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  el.appendChild(svg);
  const tip = document.createElement('div'); tip.className = 'tip'; el.appendChild(tip);
  function draw(){
    svg.innerHTML = '';
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (let i = 0; i < s.t.length; i++) if (s.t[i] >= x0 && s.t[i] <= x1) {lo = Math.min(lo, s.v[i]); hi = Math.max(hi, s.v[i]);}
    if (!isFinite(lo)) {lo = 0; hi = 1;} if (hi === lo) {hi += 1; lo -= 1;}
    const X = t => L + (t - x0) / (x1 - x0 || 1) * (W - L - R), Y = v => T + (hi - v) / (hi - lo) * (H - T - B);
    for (let k = 0; k <= 4; k++) {
      const v = lo + (hi - lo) * k / 4, y = Y(v);
      svg.insertAdjacentHTML('beforeend', `<line x1="${L}" x2="${W-R}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${L-6}" y="${y+4}" font-size="11" text-anchor="end" fill="#666">${v.toFixed(Math.abs(hi-lo) < 10 ? 2 : 0)}</text>`);
    }
    svg.insertAdjacentHTML('beforeend', `<text x="${L}" y="${H-6}" font-size="11" fill="#666">${fmtT(x0)}</text><text x="${W-R}" y="${H-6}" font-size="11" text-anchor="end" fill="#666">${fmtT(x1)}</text>`);
    for (const s of series) {
      let d = ''; for (let i = 0; i < s.t.length; i++) if (s.t[i] >= x0 && s.t[i] <= x1) d += (d ? 'L' : 'M') + X(s.t[i]).toFixed(1) + ',' + Y(s.v[i]).toFixed(1);
      if (s.fill) d += `L${X(Math.min(x1, s.t[s.t.length-1])).toFixed(1)},${Y(0)}L${X(Math.max(x0, s.t[0])).toFixed(1)},${Y(0)}Z`;
      svg.insertAdjacentHTML('beforeend', `<path d="${d}" fill="${s.fill || 'none'}" stroke="${s.color}" stroke-width="1.2"/>`);
    }
    for (const m of markers || []) if (m.t >= x0 && m.t <= x1) {
      const x = X(m.t), y = Y(m.v), s = 5;
      const pts = m.k === 'L' ? `${x},${y-s} ${x-s},${y+s} ${x+s},${y+s}` : m.k === 'S' ? `${x},${y+s} ${x-s},${y-s} ${x+s},${y-s}` : null;
      svg.insertAdjacentHTML('beforeend', pts ? `<polygon points="${pts}" fill="${m.k === 'L' ? '#18794e' : '#c62828'}"/>` : `<circle cx="${x}" cy="${y}" r="3" fill="none" stroke="#1565c0"/>`);
    }
    svg._X = X; svg._inv = px => x0 + (px - L) / (W - L - R) * (x1 - x0);
  }
  function px(ev){ const r = svg.getBoundingClientRect(); return (ev.clientX - r.left) / r.width * W; }
  let dragFrom = null;
  svg.addEventListener('mousedown', ev => { dragFrom = px(ev); });
  svg.addEventListener('mouseup', ev => { const to = px(ev); if (dragFrom !== null && Math.abs(to - dragFrom) > 8) { const a = svg._inv(Math.min(dragFrom, to)), b = svg._inv(Math.max(dragFrom, to)); x0 = a; x1 = b; draw(); } dragFrom = null; });
  svg.addEventListener('dblclick', () => { [x0, x1] = full; draw(); });
  svg.addEventListener('mousemove', ev => {
    const t = svg._inv(px(ev)), s = series[0];
    let i = s.t.findIndex(v => v >= t); if (i < 0) i = s.t.length - 1;
    const r = svg.getBoundingClientRect();
    tip.style.display = 'block'; tip.style.left = (ev.clientX - el.getBoundingClientRect().left + 12) + 'px'; tip.style.top = '30px';
    tip.textContent = `${fmtT(s.t[i])}  ${label}: ${series.map(q => q.name + ' ' + q.v[Math.min(i, q.v.length-1)].toFixed(2)).join('  ')}`;
  });
  svg.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  draw();
}
chart(document.getElementById('equity'), [{name:'equity', t:D.eq_t, v:D.eq_v, color:'#1565c0'}], null, 'USDT');
chart(document.getElementById('drawdown'), [{name:'drawdown %', t:D.eq_t, v:D.dd_v, color:'#c62828', fill:'rgba(198,40,40,.15)'}], null, '%');
chart(document.getElementById('price'), [{name:'close', t:D.px_t, v:D.px_v, color:'#444'}], D.markers, D.symbol);
})();
"""


def _series(times: np.ndarray, values: np.ndarray) -> tuple[list[int], list[float]]:
    t, v = downsample(times, values, CHART_POINTS)
    return [int(x) for x in t], [round(float(x), 8) for x in v]


def render_html(report: Report) -> str:
    r, m, info = report.result, report.metrics, report.info
    summary = report.summary()
    eq_t, eq_v = _series(report.times, report.equity)
    peak = np.maximum.accumulate(np.array(eq_v)) if eq_v else np.array([])
    dd_v = [round(float(x), 6) for x in (np.array(eq_v) / peak - 1) * 100] if eq_v else []
    bars = r.bot_bars
    first = int(np.searchsorted(bars.ts, int(r.bars.ts[r.start]))) if len(report.times) else 0
    px_t, px_v = _series(bars.ts[first:], bars.close[first:])
    trades = r.trades[-MAX_MARKERS // 2:]
    markers: list[dict[str, Any]] = []
    for t in trades:
        markers.append({"t": t.entry_ts, "v": float(t.entry_price), "k": "L" if t.side.sign > 0 else "S"})
        markers.append({"t": t.exit_ts, "v": float(t.exit_price), "k": "X"})
    data = {"eq_t": eq_t, "eq_v": eq_v, "dd_v": dd_v, "px_t": px_t, "px_v": px_v, "markers": markers,
            "symbol": info.symbol}
    kv = [
        ("Period", f"{summary['from']} → {summary['to']}"), ("Bars", f"{len(report.times):,} × {r.bars.timeframe}"),
        ("Capital", f"{r.capital:,.2f}"), ("Final equity", f"{r.final_equity:,.2f}"),
        ("Net P&L", money(m.net_pnl)), ("Total return", pct(m.total_return_pct)),
        ("CAGR", pct(m.cagr_pct)), ("Buy & hold", pct(m.buy_and_hold_pct)),
        ("Trades", f"{m.trades:,}"), ("Win rate", pct(m.win_rate_pct, signed=False)),
        ("Profit factor (cash)", num(m.profit_factor)), ("Profit factor (%)", num(m.profit_factor_pct)),
        ("Expectancy", money(m.expectancy)), ("Fees paid", money(m.fees_paid)),
        ("Avg win / loss", f"{money(m.avg_win)} / {money(m.avg_loss)}"),
        ("Largest win / loss", f"{money(m.largest_win)} / {money(m.largest_loss)}"),
        ("Max drawdown", pct(m.max_drawdown_pct)), ("Max DD duration", duration(m.max_drawdown_duration)),
        ("Sharpe", num(m.sharpe)), ("Sortino", num(m.sortino)), ("Calmar", num(m.calmar)),
        ("Exposure", pct(m.exposure_pct, signed=False)), ("Fill model", info.fill_model),
        ("Fee / slippage", f"{info.fee_pct}% per leg / {info.slippage_pct}%"),
        ("Ambiguous bars", f"{r.ambiguous_bars:,}"), ("Risk profile", info.risk_profile),
    ]
    if r.state.value != "RUNNING":
        kv.append(("Bot at end", f"{r.state.value}: {r.state_reason}"))
    if report.optimistic is not None:
        kv.append(("Pessimistic / optimistic P&L",
                   f"{money(float(r.final_equity - r.capital))} / {money(float(report.optimistic.final_equity - r.capital))}"))
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(a)}</td><td>{html.escape(b)}</td>" for a, b in kv[i:i + 2]) + "</tr>"
        for i in range(0, len(kv), 2))
    rows = []
    shown = r.trades[-TABLE_TRADES:]
    for t in shown:
        net = float(t.net_pnl)
        cls = "pos" if net > 0 else "neg" if net < 0 else ""
        rows.append(f"<tr><td>{iso(t.entry_ts)}</td><td>{iso(t.exit_ts)}</td><td>{'long' if t.side.sign > 0 else 'short'}</td>"
                    f"<td>{t.qty}</td><td>{t.entry_price}</td><td>{t.exit_price}</td><td class='{cls}'>{net:+,.2f}</td>"
                    f"<td>{float(t.fees):,.2f}</td><td>{html.escape(t.exit_reason)}</td></tr>")
    note = (f"<p class='note'>The last {len(shown):,} of {len(r.trades):,} trades; trades.csv has them all.</p>"
            if len(shown) < len(r.trades) else "")
    params = ", ".join(f"{k}={v}" for k, v in info.params.items()) or "defaults"
    title = f"Backtest: {info.strategy} on {info.symbol} {info.timeframe}"
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False, default=_finite).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="sub">{html.escape(params)} · data: {html.escape(info.data)} · {r.bars_processed:,} bars processed in {report.elapsed_s:.2f}s</div>
<table class="kv">{cells}</table>
<div class="chart" id="equity"><h2>Equity (USDT) · drag to zoom, double-click to reset</h2></div>
<div class="chart" id="drawdown"><h2>Drawdown (%)</h2></div>
<div class="chart" id="price"><h2>{html.escape(info.symbol)} close with entries (▲ long, ▼ short) and exits (○)</h2></div>
<h2 style="font-size:15px">Trades</h2>{note}
<table class="trades"><tr><th>entry</th><th>exit</th><th>side</th><th>qty</th><th>entry price</th><th>exit price</th><th>net P&amp;L</th><th>fees</th><th>reason</th></tr>
{''.join(rows)}</table>
<script type="application/json" id="data">{payload}</script>
<script>{_JS}</script>
</body></html>
"""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {value!r}")
