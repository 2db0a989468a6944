"""Self-contained HTML reports (charts embedded as PNG data URIs, so they open offline)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#666;font-size:.9em}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
"""


@dataclass
class Section:
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, rows: list[dict], columns: list[str] | None = None) -> None:
        if not rows:
            self.note("(no rows)")
            return
        cols = columns or list(rows[0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
                       for r in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, fig) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        self.parts.append(f'<img alt="chart" src="data:image/png;base64,{data}"/>')


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if np.isnan(v):
            return "NaN"
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def write_html(path: str | Path, title: str, sections: list[Section], subtitle: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<h2>{html.escape(s.title)}</h2>{''.join(s.parts)}" for s in sections)
    sub = f'<p class="note">{html.escape(subtitle)}</p>' if subtitle else ""
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{sub}{body}</body></html>")
    return path


def _times(ts_ns: np.ndarray) -> np.ndarray:
    return ts_ns.astype("datetime64[ns]")


def bars_features_figure(bars: pl.DataFrame, feats: pl.DataFrame, symbol: str):
    """Price with the rolling VWAP, order flow (OFI EMA, cumulative delta), activity and volatility."""
    t = _times(bars["ts_event"].to_numpy())
    fig, ax = plt.subplots(4, 1, figsize=(11, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 1.4, 1.4]})
    ax[0].plot(t, bars["close"].to_numpy(), lw=0.8, label="close")
    if "rvwap" in feats.columns:
        ax[0].plot(t, feats["rvwap"].to_numpy(), lw=0.8, alpha=0.8, label="rolling VWAP")
    ax[0].set_ylabel("price")
    ax[0].legend(loc="upper left", fontsize=8)
    ax[0].set_title(f"{symbol}: {bars.height:,} bars")
    for col, a in (("ofi_ema10", ax[1]),):
        if col in feats.columns:
            a.plot(t, feats[col].to_numpy(), lw=0.7, color="tab:purple", label=col)
            a.axhline(0, color="#999", lw=0.5)
            a.set_ylabel("OFI EMA")
    if "cum_delta" in feats.columns:
        a2 = ax[1].twinx()
        a2.plot(t, feats["cum_delta"].to_numpy(), lw=0.8, color="tab:green")
        a2.set_ylabel("cum. delta", color="tab:green")
    if "trade_intensity" in feats.columns:
        ax[2].plot(t, feats["trade_intensity"].to_numpy() * 1000.0, lw=0.6, color="tab:orange")
        ax[2].set_ylabel("trades / s")
    if "vol_ratio" in feats.columns:
        ax[3].plot(t, feats["vol_ratio"].to_numpy(), lw=0.7, color="tab:red")
        ax[3].axhline(1.0, color="#999", lw=0.5)
        ax[3].set_ylabel("RV20 / RV200")
    fig.autofmt_xdate()
    return fig


def distribution_figure(values: dict[str, np.ndarray], title: str):
    fig, axes = plt.subplots(1, len(values), figsize=(3.6 * len(values), 2.8))
    axes = np.atleast_1d(axes)
    for a, (name, v) in zip(axes, values.items()):
        v = v[np.isfinite(v)]
        if v.size:
            lo, hi = np.quantile(v, [0.005, 0.995])
            a.hist(np.clip(v, lo, hi), bins=60, color="tab:blue", alpha=0.8)
        a.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
