"""Fan chart and reliability (calibration) PNGs for ``pvcast evaluate``."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from engine.metrics import coverage, observed_frequencies  # noqa: E402
from engine.quantiles import ALPHAS  # noqa: E402


def fan_chart(times, obs_kw, q_kw, path, title):
    """Fan chart of P10..P90 (kW) against measured power (kW), written to ``path``.

    Parameters
    ----------
    times : DatetimeIndex
        UTC; empty: the axes without values.
    obs_kw : ndarray, shape (n,)
    q_kw : ndarray, shape (n, 5)
    path : str or Path
    title : str
    """
    fig, ax = plt.subplots(figsize=(11, 4))
    if len(times):  # no values (a window between two steps): the axes alone (matplotlib fails on empty dates)
        ax.fill_between(times, q_kw[:, 0], q_kw[:, 4], color="tab:blue", alpha=0.2, step="mid", label="P10-P90")
        ax.fill_between(times, q_kw[:, 1], q_kw[:, 3], color="tab:blue", alpha=0.35, step="mid", label="P25-P75")
        ax.plot(times, q_kw[:, 2], color="tab:blue", lw=1.2, label="P50")
        ax.plot(times, obs_kw, color="black", lw=0.9, marker=".", ms=2, label="measured")
    ax.set_ylabel("AC power (kW)")
    ax.set_xlabel("time (UTC)")
    ax.set_title(title)
    ax.legend(loc="upper right", ncols=4, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability(obs_kw, forecasts, path, title):
    """Reliability diagram: nominal quantile level vs observed frequency.

    Frequencies are :func:`engine.metrics.observed_frequencies` (ties
    resolved as :func:`engine.metrics.below` does), so the P10 and P90 points
    of a curve differ by exactly the P10-P90 coverage shown in its label and
    in the hold-out table.

    Parameters
    ----------
    obs_kw : ndarray, shape (n,)
        Daylight observations.
    forecasts : dict
        name -> (n, 5) quantiles, kW.
    path : str or Path
    title : str
    """
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="ideal")
    for name, q in forecasts.items():
        cov = coverage(obs_kw, q[:, 0], q[:, -1], (ALPHAS[0], ALPHAS[-1]))
        ax.plot(ALPHAS, observed_frequencies(obs_kw, q), marker="o",
                label=f"{name} (P{round(100 * ALPHAS[0])}-P{round(100 * ALPHAS[-1])} coverage {100 * cov:.1f} %)")
    ax.set_xlabel("nominal quantile level")
    ax.set_ylabel("observed frequency (obs below quantile; ties toward the median)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
