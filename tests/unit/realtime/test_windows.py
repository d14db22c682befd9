"""Event time: window alignment, the partition clock, finality and lateness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharmaflow.realtime.windows import (
    US,
    OpenWindows,
    PartitionClock,
    classify,
    final_after_us,
    from_us,
    is_final,
    to_us,
    window_start,
    window_starts,
)
from tests.realtime_events import T0, at

HOUR = 3600 * US


def us(moment: datetime) -> int:
    return to_us(moment)


def test_windows_are_aligned_to_the_epoch():
    times = np.array([us(at(0)), us(at(0.99)), us(at(1)), us(at(4.5)), us(at(5))])
    assert window_starts(times, 60).tolist() == [
        us(at(0)) // US,
        us(at(0)) // US,
        us(at(1)) // US,
        us(at(4)) // US,
        us(at(5)) // US,
    ]
    assert (window_starts(times, 300) * US).tolist() == [us(at(0))] * 4 + [us(at(5))]
    assert window_start(us(at(7.25)), 300) == us(at(5)) // US


def test_times_round_trip_and_naive_means_utc():
    moment = datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)
    assert from_us(to_us(moment)) == moment
    assert to_us(moment.replace(tzinfo=None)) == to_us(moment)
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_a_window_is_final_once_the_clock_reaches_its_end_plus_the_lateness():
    start = us(at(0)) // US
    lateness = HOUR
    end_plus = us(at(1)) + lateness
    assert final_after_us(start, 60, lateness) == end_plus
    assert not is_final(start, 60, end_plus - 1, lateness)
    assert is_final(start, 60, end_plus, lateness)
    assert not is_final(start, 60, None, lateness)


def test_the_clock_is_carried_forward_by_wall_time_while_quiet():
    clock = PartitionClock().advance(us(at(100)), latest_event_us=us(at(0)))
    assert clock.watermark_us == clock.clock_us == us(at(0))
    assert clock.at(us(at(100))) == us(at(0))
    assert clock.at(us(at(130))) == us(at(30))  # quiet for 30 minutes of wall time
    assert clock.at(us(at(90))) == us(at(0))  # wall time going back never moves it back


def test_the_clock_never_moves_back_when_events_resume_slower_than_wall_time():
    clock = PartitionClock().advance(us(at(0)), us(at(0)))
    clock = clock.advance(us(at(120)))  # two quiet hours: the clock is at +120 min
    assert clock.clock_us == us(at(120))
    resumed = clock.advance(us(at(121)), latest_event_us=us(at(5)))  # events lag behind
    assert resumed.watermark_us == us(at(5))
    assert resumed.clock_us == us(at(121))  # not back to the watermark
    ahead = resumed.advance(us(at(122)), latest_event_us=us(at(200)))
    assert ahead.clock_us == us(at(200))


def test_after_a_restart_the_downtime_does_not_count_as_quiet_time():
    stored = PartitionClock(us(at(0)), us(at(10)), wall_us=None)  # as `load` leaves it
    assert stored.at(us(at(5000))) == us(at(10))
    moved = stored.advance(us(at(5000)))
    assert moved.clock_us == us(at(10)) and moved.wall_us == us(at(5000))
    assert moved.at(us(at(5001))) == us(at(11))


def test_lateness_against_a_hand_built_sequence():
    lateness = HOUR
    # clock 12:00 at the start of the batch
    times = np.array(
        [
            us(at(90)),  # 11:30: window 11:30-11:31 final at 12:31 -> on time
            us(at(58)),  # 10:58: final at 11:59 <= 12:00 -> late by 62 minutes
            us(at(59)),  # 10:59: final at 12:00 <= 12:00 -> late (the boundary is final)
            us(at(190)),  # 13:10 on time, moves the clock
            us(at(125)),  # 12:05: final at 13:06 <= 13:10 -> late by 65 minutes
            us(at(131)),  # 12:11: final at 13:12 > 13:10 -> on time
        ]
    )
    judged = classify(times, us(at(120)), 60, lateness)
    assert judged.late.tolist() == [False, True, True, False, True, False]
    assert (judged.late_by_us // (60 * US)).tolist() == [0, 62, 61, 0, 65, 0]
    assert judged.clock_us == us(at(190))


def test_the_first_event_of_a_partition_is_never_late():
    judged = classify(np.array([us(at(0)), us(at(-120))]), None, 60, HOUR)
    assert judged.late.tolist() == [False, True]
    assert judged.clock_us == us(at(0))


def test_empty_batch_keeps_the_clock():
    judged = classify(np.zeros(0, np.int64), 42, 60, HOUR)
    assert judged.late.size == 0 and judged.clock_us == 42


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(st.integers(min_value=-3000, max_value=3000), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=120),
)
def test_cutting_a_partition_into_batches_never_changes_what_is_late(offsets, cut, lateness_min):
    """The property a restart relies on: a stream split anywhere classifies the same."""
    times = np.array([us(T0) + m * 60 * US for m in offsets], dtype=np.int64)
    lateness = lateness_min * 60 * US
    whole = classify(times, None, 60, lateness)
    cut = min(cut, len(times))
    first = classify(times[:cut], None, 60, lateness)
    second = classify(times[cut:], first.clock_us, 60, lateness)
    assert np.concatenate([first.late, second.late]).tolist() == whole.late.tolist()
    assert second.clock_us == whole.clock_us
    # and nothing is both counted and late: on time + late == all
    assert int((~whole.late).sum() + whole.late.sum()) == len(times)


def test_open_windows_count_as_they_close():
    slots = OpenWindows()
    slots.add(60, [us(at(0)) // US, us(at(1)) // US, us(at(2)) // US])
    slots.add(300, [us(at(0)) // US])
    assert len(slots) == 4
    lateness = HOUR
    assert slots.close(us(at(1)) + lateness, lateness) == 1  # the 10:00 minute only
    assert slots.close(us(at(5)) + lateness, lateness) == 3  # 10:01, 10:02 and 10:00-10:05
    assert len(slots) == 0
    assert slots.close(None, lateness) == 0


def test_from_us_is_timezone_aware():
    assert from_us(us(T0)) == T0
    assert from_us(us(T0) + 90 * US) == T0 + timedelta(seconds=90)


def test_config_from_settings_and_its_refusals(tmp_path):
    from pharmaflow.config import Settings
    from pharmaflow.errors import PharmaflowError
    from pharmaflow.realtime.config import RealtimeConfig

    settings = Settings(
        data_dir=tmp_path,
        realtime_windows=[300, 60, 900],
        realtime_allowed_lateness_s=7200,
        realtime_retention_s=86_400,
        realtime_stuck_hours={"placed": 1.5},
    )
    config = RealtimeConfig.from_settings(settings)
    assert config.windows_s == (60, 300, 900) and config.narrowest_s == 60
    assert (config.allowed_lateness_s, config.retention_s) == (7200, 86_400)
    assert config.stuck_after_s("placed") == 5400 and config.stuck_after_s("delivered") is None
    assert config.stuck_after_s("shipped") == 72 * 3600  # the defaults fill the rest
    # dedupe memory covers whatever can still change a window
    assert RealtimeConfig(allowed_lateness_s=5 * 86_400, retention_s=6 * 86_400,
                          dedupe_ttl_hours=1).dedupe_horizon_hours == 5 * 24 + 1  # fmt: skip
    for bad in (
        {"windows_s": (60, 60)},
        {"windows_s": (0,)},
        {"retention_s": 60},
        {"stuck_hours": {"delivered": 1.0}},
        {"allowed_lateness_s": -1},
    ):
        with pytest.raises(PharmaflowError):
            RealtimeConfig(**bad)
