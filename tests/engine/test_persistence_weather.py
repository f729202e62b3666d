"""bench/bench_intraday.py --weather persistence: the forecast-grade weather proxy (daily persistence of an analysis).

Real data: SERF East 2016's PSM3 file (``engine.data.load_serf_east_2016``).
"""

import numpy as np
import pandas as pd
import pytest

from bench_intraday import PERSISTENCE_DELAY, persistence_weather  # bench/ (pytest pythonpath)
from engine import data

DAY = pd.Timedelta(days=1)
ISSUES = pd.DatetimeIndex(["2016-08-01T18:00Z", "2016-08-02T15:00Z", "2016-08-02T15:10Z", "2016-09-30T23:00Z"])


@pytest.fixture(scope="module")
def analysis():
    return data.load_serf_east_2016(1, 1.0)[1]


@pytest.mark.parametrize("issue", ISSUES)
def test_a_run_reads_no_record_at_or_after_its_issue(analysis, issue):
    got = persistence_weather(analysis, issue)
    source = pd.DatetimeIndex(got["valid_time"]) - pd.to_timedelta(got["persisted_days"], unit="D")
    assert (got["persisted_days"] >= 1).all()
    assert (source < issue).all()
    assert (pd.DatetimeIndex(got["issue_time"]) == source + PERSISTENCE_DELAY).all()  # known a delay after its time
    assert (pd.DatetimeIndex(got["issue_time"]) <= issue).all()


@pytest.mark.parametrize("issue", ISSUES)
def test_each_valid_time_reads_the_latest_vintage_issued_by_the_issue(analysis, issue):
    """As ``engine.store.read_weather`` selects from a store of every vintage (the record of s stored for s + k days,
    k = 1..4, issued at s + delay): per valid time the latest issued at or before the issue."""
    store = pd.concat([analysis.assign(valid_time=analysis["valid_time"] + k * DAY,
                                       issue_time=analysis["valid_time"] + PERSISTENCE_DELAY) for k in range(1, 5)])
    read = (store[store["issue_time"] <= issue].sort_values(["valid_time", "issue_time"])
            .groupby("valid_time").tail(1).set_index("valid_time"))
    got = persistence_weather(analysis, issue).set_index("valid_time")
    span = (read.index >= analysis["valid_time"].min() + DAY) & (read.index <= issue + 3 * DAY - PERSISTENCE_DELAY) \
        & (read.index <= analysis["valid_time"].max())  # every k the store holds; the analysis' valid times
    read = read[span]
    assert len(read) > 96
    assert read.index.isin(got.index).all()
    for column in ("ghi", "temp_air", "issue_time"):
        np.testing.assert_array_equal(got.loc[read.index, column].to_numpy(), read[column].to_numpy())


def test_yesterday_until_a_day_minus_the_delay_ahead_then_the_day_before(analysis):
    issue = pd.Timestamp("2016-08-01T18:00Z")  # a day-ahead issue: the next local day is 12..36 h ahead
    got = persistence_weather(analysis, issue).set_index("valid_time")
    lead = (got.index - issue) / pd.Timedelta(hours=1)
    assert (got["persisted_days"][lead <= 24 - PERSISTENCE_DELAY / pd.Timedelta(hours=1)] == 1).all()
    assert (got["persisted_days"][(lead > 23) & (lead <= 47)] == 2).all()
    ghi = analysis.set_index("valid_time")["ghi"]
    later = got.index[got.index > issue]
    np.testing.assert_array_equal(got.loc[later, "ghi"].to_numpy(),
                                  ghi.reindex(later - pd.to_timedelta(got.loc[later, "persisted_days"], unit="D"))
                                  .to_numpy())


def test_clear_sky_irradiance_stays_the_analysis_at_the_valid_time(analysis):
    got = persistence_weather(analysis, ISSUES[0]).set_index("valid_time")
    np.testing.assert_array_equal(got["ghi_clear"].to_numpy(),
                                  analysis.set_index("valid_time")["ghi_clear"].reindex(got.index).to_numpy())
    assert not np.array_equal(got["ghi"].to_numpy(), analysis.set_index("valid_time")["ghi"].reindex(got.index))
