"""Reports from a results folder: statistics helpers, figures and ``report.md``.

Studies build their summaries from the helpers here (``mean_ci``, ``wilson``,
``markdown_table``, ``config_columns``) so every report computes intervals the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

CORE_COLUMNS = ("study", "run_id", "seed", "metric", "value", "step")


def config_columns(
    results: pd.DataFrame, manifest: Mapping[str, Any], keys: Sequence[str] | None = None
) -> pd.DataFrame:
    """``results`` with config keys added as columns, read from the manifest by run id.

    With ``keys=None`` every config key is added. Columns already present are kept.
    """
    runs = manifest.get("runs", {})
    configs = {rid: entry.get("config", {}) for rid, entry in runs.items()}
    all_keys = sorted({k for cfg in configs.values() for k in cfg})
    wanted = all_keys if keys is None else list(keys)
    out = results.copy()
    for key in wanted:
        if key in out.columns:
            continue
        if key not in all_keys:
            raise KeyError(
                f"config key {key!r} is not in the manifest; available: {', '.join(all_keys)}"
            )
        out[key] = out["run_id"].map(lambda rid, k=key: _hashable(configs.get(rid, {}).get(k)))
    return out


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval for the mean; the interval collapses for n = 1."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return (mean, mean, mean)
    half = float(special.stdtrit(n - 1, 0.5 + confidence / 2) * x.std(ddof=1) / math.sqrt(n))
    return (mean, mean - half, mean + half)


def mean_ci(
    df: pd.DataFrame, by: Sequence[str], value: str = "value", confidence: float = 0.95
) -> pd.DataFrame:
    """Mean and t-interval of ``value`` per group: columns ``*by, mean, lo, hi, n``.

    Rows are the unit of replication (normally one per seed), so the interval is over seeds.
    """
    rows = []
    if not by:
        mean, lo, hi = t_interval(df[value].to_numpy(), confidence)
        return pd.DataFrame([{"mean": mean, "lo": lo, "hi": hi, "n": int(df[value].notna().sum())}])
    for keys, group in df.groupby(list(by), sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        mean, lo, hi = t_interval(group[value].to_numpy(), confidence)
        rows.append(
            {
                **dict(zip(by, keys, strict=True)),
                "mean": mean,
                "lo": lo,
                "hi": hi,
                "n": int(group[value].notna().sum()),
            }
        )
    return pd.DataFrame(rows, columns=[*by, "mean", "lo", "hi", "n"])


def wilson(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(special.ndtri(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "—"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3f}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency), floats to 3 decimals."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines)


def varied_keys(results: pd.DataFrame) -> list[str]:
    """The columns that describe a run beyond the core ones (varied config keys, descriptive)."""
    return [c for c in results.columns if c not in CORE_COLUMNS]


def default_summary(results: pd.DataFrame, manifest: Mapping[str, Any]) -> str:
    """Per metric: mean and 95% interval over seeds, by the varied keys (last step only)."""
    if results.empty:
        return "No results."
    df = results
    if "step" in df.columns and df["step"].notna().any():
        last = df.groupby(["run_id", "metric"])["step"].transform("max")
        df = df[(df["step"] == last) | df["step"].isna()]
    by = ["metric", *varied_keys(df)]
    table = mean_ci(df, by)
    return (
        "Mean over seeds with 95% t-intervals (final step where runs have steps).\n\n"
        + markdown_table(table)
    )


def default_plots(results: pd.DataFrame, figure_dir: Path, title: str) -> list[Path]:
    """One PNG per metric: curves over ``step`` when present, else a bar per varied setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    keys = varied_keys(results)
    for metric, mdf in results.groupby("metric", sort=True):
        has_steps = "step" in mdf.columns and mdf["step"].notna().any()
        if has_steps:  # a metric reported over steps: plot the rows that have one
            mdf = mdf[mdf["step"].notna()].astype({"step": "float64"})
        fig, ax = plt.subplots(figsize=(6, 4))
        groups = mdf.groupby(keys, dropna=False) if keys else [((), mdf)]
        if has_steps:
            for label, g in groups:
                agg = mean_ci(g, ["step"])
                ax.plot(agg["step"], agg["mean"], label=str(label) if keys else None)
                ax.fill_between(agg["step"], agg["lo"], agg["hi"], alpha=0.2)
            ax.set_xlabel("step")
        else:
            labels, means, errs = [], [], []
            for label, g in groups:
                mean, lo, hi = t_interval(g["value"].to_numpy())
                labels.append(str(label) if keys else metric)
                means.append(mean)
                errs.append(0.0 if math.isnan(hi) else hi - mean)
            ax.bar(range(len(means)), means, yerr=errs, capsize=3)
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{title}: {metric}")
        ax.set_ylabel(str(metric))
        if keys and has_steps:
            ax.legend(fontsize=7, title=", ".join(keys), title_fontsize=7)
        paths.append(save_figure(fig, figure_dir / f"{_safe(str(metric))}.png"))
    return paths


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out, write and close a matplotlib figure; returns ``path`` (for ``plot``'s list)."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(study: Any, folder: Path) -> Path:
    """(Re)build ``report.md`` and ``figures/`` of a results folder with the study's own code."""
    from sandbox.results import ResultsFolder

    rf = ResultsFolder(folder)
    manifest = rf.read_manifest()
    results = rf.read_results()
    figure_dir = folder / "figures"
    figure_dir.mkdir(exist_ok=True)
    for old in figure_dir.glob("*.png"):
        old.unlink()
    lines = [f"# {study.name}", ""]
    if study.summary:
        lines += [study.summary, ""]
    if study.paper:
        lines += [f"Reproduces: {study.paper}", ""]
    runs = manifest.get("runs", {})
    done = sum(1 for r in runs.values() if r.get("status") == "ok")
    failed = {rid: r.get("error", "") for rid, r in runs.items() if r.get("status") == "failed"}
    lines += [
        f"Scale `{manifest.get('scale')}`, {len(runs)} runs ({done} ok, {len(failed)} failed), "
        f"seeds {sorted({r.get('seed') for r in runs.values()})}, study version {manifest.get('study_version')}.",
        "",
    ]
    if failed:
        lines += (
            ["Failed runs:", ""]
            + [f"- `{rid}`: {err.splitlines()[-1] if err else ''}" for rid, err in failed.items()]
            + [""]
        )
    if results.empty:
        lines += ["No results yet."]
    else:
        lines += [study.summarize(results, manifest), ""]
        figures = study.plot(results, figure_dir)
        if figures:
            lines += ["## Figures", ""]
            lines += [f"![{p.stem}](figures/{p.name})" for p in figures]
    path = folder / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path
