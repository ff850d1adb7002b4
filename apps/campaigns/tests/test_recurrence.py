"""Recurrence: RFC 5545 §3.8.5.3 examples (DTSTART in America/New_York), the DST rules,
UNTIL forms, bounds and evaluation time. Pure functions: no database."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.campaigns.recurrence import (
    CALENDAR_CYCLE_YEARS,
    HORIZON_YEARS,
    MAX_OCCURRENCES_PER_QUERY,
    RuleInvalid,
    build_schedule,
    cycle_shift,
    first_occurrence_after,
    parse_rule,
    to_utc,
)

NY = "America/New_York"
EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


def local_times(start: str, rule: str | None, tz: str = NY, limit: int = 500, **kwargs):
    schedule = build_schedule(
        start=datetime.fromisoformat(start), timezone_name=tz, rrule=rule, **kwargs
    )
    result = []
    for occurrence in schedule.occurrences(EPOCH):
        if len(result) >= limit:
            break
        result.append(occurrence)
    return result


def wall(occurrences) -> list[str]:
    return [o.local.strftime("%Y-%m-%d %H:%M") for o in occurrences]


def days(year_month_days: str, hour: str = "09:00") -> list[str]:
    """'1997-09: 2 4 16; 1997-10: 2' -> ['1997-09-02 09:00', ...]"""
    result = []
    for group in year_month_days.split(";"):
        month, numbers = group.split(":")
        result += [f"{month.strip()}-{int(n):02d} {hour}" for n in numbers.split()]
    return result


# (name, DTSTART local, RRULE, expected wall-clock times — the first N when the rule is longer)
RFC_EXAMPLES = [
    (
        "daily x10",
        "1997-09-02T09:00",
        "FREQ=DAILY;COUNT=10",
        days("1997-09: 2 3 4 5 6 7 8 9 10 11"),
    ),
    (
        "every 10 days x5",
        "1997-09-02T09:00",
        "FREQ=DAILY;INTERVAL=10;COUNT=5",
        days("1997-09: 2 12 22; 1997-10: 2 12"),
    ),
    ("every other day", "1997-09-02T09:00", "FREQ=DAILY;INTERVAL=2", days("1997-09: 2 4 6 8 10")),
    (
        "weekly x10",
        "1997-09-02T09:00",
        "FREQ=WEEKLY;COUNT=10",
        days("1997-09: 2 9 16 23 30; 1997-10: 7 14 21 28; 1997-11: 4"),
    ),
    (
        "every other week forever",
        "1997-09-02T09:00",
        "FREQ=WEEKLY;INTERVAL=2;WKST=SU",
        days("1997-09: 2 16 30; 1997-10: 14 28; 1997-11: 11 25"),
    ),
    (
        "tu/th for five weeks (UNTIL)",
        "1997-09-02T09:00",
        "FREQ=WEEKLY;UNTIL=19971007T000000Z;WKST=SU;BYDAY=TU,TH",
        days("1997-09: 2 4 9 11 16 18 23 25 30; 1997-10: 2"),
    ),
    (
        "tu/th for five weeks (COUNT)",
        "1997-09-02T09:00",
        "FREQ=WEEKLY;COUNT=10;WKST=SU;BYDAY=TU,TH",
        days("1997-09: 2 4 9 11 16 18 23 25 30; 1997-10: 2"),
    ),
    (
        "every other week mo/we/fr until dec 24",
        "1997-09-01T09:00",
        "FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000Z;WKST=SU;BYDAY=MO,WE,FR",
        days(
            "1997-09: 1 3 5 15 17 19 29; 1997-10: 1 3 13 15 17 27 29 31; 1997-11: 10 12 14 24 26 28; 1997-12: 8 10 12 22"
        ),
    ),
    (
        "every other week tu/th x8",
        "1997-09-02T09:00",
        "FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH",
        days("1997-09: 2 4 16 18 30; 1997-10: 2 14 16"),
    ),
    (
        "first friday x10",
        "1997-09-05T09:00",
        "FREQ=MONTHLY;COUNT=10;BYDAY=1FR",
        days(
            "1997-09: 5; 1997-10: 3; 1997-11: 7; 1997-12: 5; 1998-01: 2; 1998-02: 6; 1998-03: 6; 1998-04: 3; 1998-05: 1; 1998-06: 5"
        ),
    ),
    (
        "first friday until dec 24",
        "1997-09-05T09:00",
        "FREQ=MONTHLY;UNTIL=19971224T000000Z;BYDAY=1FR",
        days("1997-09: 5; 1997-10: 3; 1997-11: 7; 1997-12: 5"),
    ),
    (
        "every other month first and last sunday x10",
        "1997-09-07T09:00",
        "FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU",
        days("1997-09: 7 28; 1997-11: 2 30; 1998-01: 4 25; 1998-03: 1 29; 1998-05: 3 31"),
    ),
    (
        "second-to-last monday x6",
        "1997-09-22T09:00",
        "FREQ=MONTHLY;COUNT=6;BYDAY=-2MO",
        days("1997-09: 22; 1997-10: 20; 1997-11: 17; 1997-12: 22; 1998-01: 19; 1998-02: 16"),
    ),
    (
        "third-to-last day",
        "1997-09-28T09:00",
        "FREQ=MONTHLY;BYMONTHDAY=-3",
        days("1997-09: 28; 1997-10: 29; 1997-11: 28; 1997-12: 29; 1998-01: 29; 1998-02: 26"),
    ),
    (
        "2nd and 15th x10",
        "1997-09-02T09:00",
        "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15",
        days("1997-09: 2 15; 1997-10: 2 15; 1997-11: 2 15; 1997-12: 2 15; 1998-01: 2 15"),
    ),
    (
        "first and last day x10",
        "1997-09-30T09:00",
        "FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1",
        days("1997-09: 30; 1997-10: 1 31; 1997-11: 1 30; 1997-12: 1 31; 1998-01: 1 31; 1998-02: 1"),
    ),
    (
        "every 18 months 10th-15th x10",
        "1997-09-10T09:00",
        "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
        days("1997-09: 10 11 12 13 14 15; 1999-03: 10 11 12 13"),
    ),
    (
        "tuesdays every other month",
        "1997-09-02T09:00",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU",
        days(
            "1997-09: 2 9 16 23 30; 1997-11: 4 11 18 25; 1998-01: 6 13 20 27; 1998-03: 3 10 17 24 31"
        ),
    ),
    (
        "june and july x10",
        "1997-06-10T09:00",
        "FREQ=YEARLY;COUNT=10;BYMONTH=6,7",
        days(
            "1997-06: 10; 1997-07: 10; 1998-06: 10; 1998-07: 10; 1999-06: 10; 1999-07: 10; 2000-06: 10; 2000-07: 10; 2001-06: 10; 2001-07: 10"
        ),
    ),
    (
        "every other year jan-mar x10",
        "1997-03-10T09:00",
        "FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3",
        days(
            "1997-03: 10; 1999-01: 10; 1999-02: 10; 1999-03: 10; 2001-01: 10; 2001-02: 10; 2001-03: 10; 2003-01: 10; 2003-02: 10; 2003-03: 10"
        ),
    ),
    (
        "every third year days 1/100/200 x10",
        "1997-01-01T09:00",
        "FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200",
        days(
            "1997-01: 1; 1997-04: 10; 1997-07: 19; 2000-01: 1; 2000-04: 9; 2000-07: 18; 2003-01: 1; 2003-04: 10; 2003-07: 19; 2006-01: 1"
        ),
    ),
    (
        "20th monday",
        "1997-05-19T09:00",
        "FREQ=YEARLY;BYDAY=20MO",
        days("1997-05: 19; 1998-05: 18; 1999-05: 17"),
    ),
    (
        "monday of week 20",
        "1997-05-12T09:00",
        "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
        days("1997-05: 12; 1998-05: 11; 1999-05: 17"),
    ),
    (
        "thursdays in march",
        "1997-03-13T09:00",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
        days("1997-03: 13 20 27; 1998-03: 5 12 19 26; 1999-03: 4 11 18 25"),
    ),
    (
        "thursdays in summer",
        "1997-06-05T09:00",
        "FREQ=YEARLY;BYDAY=TH;BYMONTH=6,7,8",
        days(
            "1997-06: 5 12 19 26; 1997-07: 3 10 17 24 31; 1997-08: 7 14 21 28; 1998-06: 4 11 18 25"
        ),
    ),
    # RFC 5545 excludes DTSTART with EXDATE here; an unsynchronised anchor is never an
    # occurrence for us (module docstring, rule 6), so no exclusion is needed.
    (
        "friday the 13th",
        "1997-09-02T09:00",
        "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
        days("1998-02: 13; 1998-03: 13; 1998-11: 13; 1999-08: 13; 2000-10: 13"),
    ),
    (
        "saturday after first sunday",
        "1997-09-13T09:00",
        "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
        days(
            "1997-09: 13; 1997-10: 11; 1997-11: 8; 1997-12: 13; 1998-01: 10; 1998-02: 7; 1998-03: 7; 1998-04: 11; 1998-05: 9; 1998-06: 13"
        ),
    ),
    (
        "us presidential election day",
        "1996-11-05T09:00",
        "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
        days("1996-11: 5; 2000-11: 7; 2004-11: 2"),
    ),
    (
        "third tu/we/th x3",
        "1997-09-04T09:00",
        "FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3",
        days("1997-09: 4; 1997-10: 7; 1997-11: 6"),
    ),
    (
        "second-to-last weekday",
        "1997-09-29T09:00",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
        days(
            "1997-09: 29; 1997-10: 30; 1997-11: 27; 1997-12: 30; 1998-01: 29; 1998-02: 26; 1998-03: 30"
        ),
    ),
    # The RFC prints UNTIL=19970902T170000Z with 09:00, 12:00, 15:00 EDT (a known erratum:
    # 17:00Z is 13:00 EDT). The same intent as floating local time:
    (
        "every 3 hours 09-17 (local UNTIL)",
        "1997-09-02T09:00",
        "FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T170000",
        ["1997-09-02 09:00", "1997-09-02 12:00", "1997-09-02 15:00"],
    ),
    (
        "every 20 minutes 9-16:40 by BYMINUTE",
        "1997-09-02T09:00",
        "FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40",
        [f"1997-09-02 {h:02d}:{m:02d}" for h in range(9, 17) for m in (0, 20, 40)]
        + ["1997-09-03 09:00"],
    ),
    (
        "wkst=MO",
        "1997-08-05T09:00",
        "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
        days("1997-08: 5 10 19 24"),
    ),
    (
        "wkst=SU",
        "1997-08-05T09:00",
        "FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
        days("1997-08: 5 17 19 31"),
    ),
    (
        "invalid dates ignored",
        "2007-01-15T09:00",
        "FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5",
        days("2007-01: 15 30; 2007-02: 15; 2007-03: 15 30"),
    ),
]


@pytest.mark.parametrize(
    ("start", "rule", "expected"),
    [case[1:] for case in RFC_EXAMPLES],
    ids=[case[0] for case in RFC_EXAMPLES],
)
def test_rfc5545_examples(start, rule, expected):
    got = local_times(start, rule, limit=len(expected) + 1)
    assert wall(got)[: len(expected)] == expected
    if "COUNT" in rule or "UNTIL" in rule:
        assert len(got) == len(expected)  # and nothing more
    zone = ZoneInfo(NY)
    for occurrence in got:  # each instant is the local time in New York, EDT or EST
        assert occurrence.utc == occurrence.local.astimezone(UTC)
        assert occurrence.local.tzinfo == zone


def test_rfc_daily_until_dec_24_crosses_the_fall_change_at_nine_local():
    got = local_times("1997-09-02T09:00", "FREQ=DAILY;UNTIL=19971224T000000Z")
    assert len(got) == 113
    assert {o.local.strftime("%H:%M") for o in got} == {"09:00"}
    assert got[0].utc == datetime(1997, 9, 2, 13, tzinfo=UTC)  # EDT
    assert got[-1].utc == datetime(1997, 12, 23, 14, tzinfo=UTC)  # EST


def test_rfc_every_day_in_january_for_three_years_both_forms():
    yearly = local_times(
        "1998-01-01T09:00",
        "FREQ=YEARLY;UNTIL=20000131T140000Z;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA",
    )
    daily = local_times("1998-01-01T09:00", "FREQ=DAILY;UNTIL=20000131T140000Z;BYMONTH=1")
    assert wall(yearly) == wall(daily)
    assert len(yearly) == 93
    assert wall(yearly)[-1] == "2000-01-31 09:00"  # 14:00Z is exactly 09:00 EST: inclusive


# --- DST semantics ----------------------------------------------------------------------------
def test_wall_clock_is_kept_across_spring_forward_in_paris():
    got = local_times("2026-03-27T09:00", "FREQ=DAILY;COUNT=4", tz="Europe/Paris")
    assert wall(got) == days("2026-03: 27 28 29 30")
    assert [o.utc.hour for o in got] == [8, 8, 7, 7]  # CET -> CEST on 29 March


def test_wall_clock_is_kept_across_fall_back_in_paris():
    got = local_times("2026-10-24T09:00", "FREQ=DAILY;COUNT=3", tz="Europe/Paris")
    assert wall(got) == days("2026-10: 24 25 26")
    assert [o.utc.hour for o in got] == [7, 8, 8]


def test_nonexistent_local_time_is_shifted_forward_by_the_gap():
    got = local_times("2007-03-10T02:30", "FREQ=DAILY;COUNT=3")
    assert [o.utc for o in got] == [
        datetime(2007, 3, 10, 7, 30, tzinfo=UTC),
        datetime(2007, 3, 11, 7, 30, tzinfo=UTC),  # 02:30 does not exist: 03:30 EDT, once
        datetime(2007, 3, 12, 6, 30, tzinfo=UTC),
    ]
    assert wall(got) == ["2007-03-10 02:30", "2007-03-11 03:30", "2007-03-12 02:30"]


def test_one_off_in_the_gap_is_shifted_too():
    [only] = local_times("2007-03-11T02:30", None)
    assert only.utc == datetime(2007, 3, 11, 7, 30, tzinfo=UTC)
    assert only.local.isoformat() == "2007-03-11T03:30:00-04:00"


def test_ambiguous_local_time_is_sent_once_at_the_first_instant():
    got = local_times("2007-11-03T01:30", "FREQ=DAILY;COUNT=3")
    assert [o.utc for o in got] == [
        datetime(2007, 11, 3, 5, 30, tzinfo=UTC),
        datetime(2007, 11, 4, 5, 30, tzinfo=UTC),  # 01:30 EDT, not 01:30 EST (06:30Z)
        datetime(2007, 11, 5, 6, 30, tzinfo=UTC),
    ]


def test_hourly_across_spring_forward_never_repeats_an_instant():
    got = local_times("2007-03-11T00:00", "FREQ=HOURLY;COUNT=6")
    instants = [o.utc for o in got]
    assert instants == sorted(set(instants))
    # 02:00 does not exist; shifted it is 03:00 EDT, which the rule also produces: sent once,
    # and counted once (RFC 5545 §3.3.10): COUNT=6 is six sends.
    assert [i.hour for i in instants] == [5, 6, 7, 8, 9, 10]


def test_count_is_the_number_of_sends_across_a_gap():
    got = local_times("2007-03-11T00:00", "FREQ=HOURLY;COUNT=4")
    assert [o.local.strftime("%H:%M") for o in got] == ["00:00", "01:00", "03:00", "04:00"]


def test_an_excluded_date_uses_up_its_instance_as_exdate_does():
    got = local_times("2027-01-01T09:00", "FREQ=DAILY;COUNT=3", exclusion_dates=["2027-01-02"])
    assert [o.local.day for o in got] == [1, 3]


def test_the_anchor_keeps_its_fraction_of_a_second():
    got = local_times("2027-01-01T09:00:00.250000", "FREQ=DAILY;COUNT=2")
    assert [o.local.microsecond for o in got] == [250_000, 250_000]


def test_quarter_hours_across_spring_forward_are_strictly_increasing():
    got = local_times("2007-03-11T01:00", "FREQ=HOURLY;BYMINUTE=0,15,30,45;COUNT=12")
    instants = [o.utc for o in got]
    assert instants == sorted(set(instants))
    assert instants[0] == datetime(2007, 3, 11, 6, tzinfo=UTC)
    # 02:xx and 03:xx local are the same four instants, counted once: twelve sends.
    assert len(instants) == 12
    assert instants[-1] == datetime(2007, 3, 11, 8, 45, tzinfo=UTC)


def test_hourly_across_fall_back_uses_first_instants_only():
    got = local_times("2007-11-04T00:00", "FREQ=HOURLY;COUNT=4")
    assert [o.utc.hour for o in got] == [4, 5, 7, 8]


def test_to_utc_gap_and_fold_directly():
    zone = ZoneInfo(NY)
    assert to_utc(datetime(2007, 3, 11, 2, 30), zone) == datetime(2007, 3, 11, 7, 30, tzinfo=UTC)
    assert to_utc(datetime(2007, 11, 4, 1, 30), zone) == datetime(2007, 11, 4, 5, 30, tzinfo=UTC)


def test_aware_start_is_converted_to_the_zones_wall_clock():
    schedule = build_schedule(
        start=datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        timezone_name="Europe/Paris",
        rrule="FREQ=DAILY",
    )
    assert schedule.start_local == datetime(2026, 1, 5, 9, 0)
    july = schedule.next_after(datetime(2026, 7, 1, tzinfo=UTC))
    assert july.local.strftime("%H:%M") == "09:00" and july.utc.hour == 7


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(
        [
            "America/New_York",
            "Europe/Paris",
            "Australia/Lord_Howe",
            "Pacific/Apia",
            "Asia/Kolkata",
            "America/Santiago",
        ]
    ),
    start=st.datetimes(min_value=datetime(2005, 1, 1), max_value=datetime(2030, 12, 31)),
    rule=st.sampled_from(
        [
            "FREQ=HOURLY;COUNT=200",
            "FREQ=DAILY;COUNT=400",
            "FREQ=HOURLY;BYMINUTE=0,30;COUNT=300",
            "FREQ=WEEKLY;BYDAY=MO,SU;COUNT=100",
        ]
    ),
)
def test_instants_strictly_increase_and_keep_the_wall_clock_where_it_exists(zone, start, rule):
    schedule = build_schedule(start=start, timezone_name=zone, rrule=rule)
    got = list(schedule.occurrences())
    instants = [o.utc for o in got]
    assert instants == sorted(set(instants))
    if rule.startswith("FREQ=DAILY"):
        wall_time = schedule.start_local.time()
        for occurrence in got:
            naive = occurrence.local.replace(tzinfo=None)
            # Either the wall-clock time itself, or (in a gap) a later time the same day.
            assert naive.time() == wall_time or (
                naive.date() == occurrence.local.date() and naive.time() > wall_time
            )


# --- UNTIL ------------------------------------------------------------------------------------
def test_until_in_utc_is_compared_with_the_instant():
    # 09:00 EST is 14:00Z: UNTIL 13:59:59Z excludes 23 December, 14:00:00Z includes it.
    before = local_times("1997-12-20T09:00", "FREQ=DAILY;UNTIL=19971223T135959Z")
    at = local_times("1997-12-20T09:00", "FREQ=DAILY;UNTIL=19971223T140000Z")
    assert wall(before)[-1] == "1997-12-22 09:00"
    assert wall(at)[-1] == "1997-12-23 09:00"


def test_until_as_local_time_and_as_date():
    local = local_times("1997-12-20T09:00", "FREQ=DAILY;UNTIL=19971223T090000")
    as_date = local_times("1997-12-20T09:00", "FREQ=DAILY;UNTIL=19971223")
    assert wall(local)[-1] == wall(as_date)[-1] == "1997-12-23 09:00"


def test_utc_until_inside_the_fall_back_overlap():
    # Every 15 minutes from 00:30; UNTIL 06:00Z is 01:00 EST, the second 01:00. Ambiguous
    # times are sent at their first instant (EDT), so the run ends with 01:45 EDT (05:45Z);
    # 02:00 EST (07:00Z) is past UNTIL.
    got = local_times("2007-11-04T00:30", "FREQ=HOURLY;BYMINUTE=0,15,30,45;UNTIL=20071104T060000Z")
    assert wall(got) == [
        f"2007-11-04 {t}" for t in ("00:30", "00:45", "01:00", "01:15", "01:30", "01:45")
    ]
    assert got[-1].utc == datetime(2007, 11, 4, 5, 45, tzinfo=UTC)


def test_exclusion_dates_skip_local_days():
    got = local_times(
        "2026-12-22T09:00",
        "FREQ=DAILY;COUNT=5",
        tz="Europe/Paris",
        exclusion_dates=["2026-12-24", date(2026, 12, 25)],
    )
    assert wall(got) == days("2026-12: 22 23 26")


# --- refusals and bounds ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("FREQ=SECONDLY", "not allowed"),
        ("FREQ=MINUTELY;INTERVAL=15", "not allowed"),
        ("FREQ=DAILY;COUNT=1000000000", "COUNT"),
        ("FREQ=DAILY;COUNT=0", "COUNT"),
        ("FREQ=DAILY;COUNT=" + "9" * 400, "small integer"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20300101T000000Z", "together"),
        ("FREQ=DAILY;BYSECOND=0,1,2", "BYSECOND"),
        ("FREQ=HOURLY;BYMINUTE=" + ",".join(str(m) for m in range(0, 60, 4)), "at most 12"),
        ("FREQ=DAILY;BYEASTER=0", "not a supported"),
        ("FREQ=FORTNIGHTLY", "Unknown FREQ"),
        ("BYDAY=MO", "FREQ is required"),
        ("FREQ=DAILY;BYMONTH=13", "out of range"),
        ("FREQ=DAILY;BYHOUR=-1", "out of range"),
        ("FREQ=MONTHLY;BYDAY=60MO", "out of range"),
        ("FREQ=WEEKLY;BYDAY=MONDAY", "BYDAY"),
        ("FREQ=DAILY;UNTIL=2030-01-01", "UNTIL must be"),
        ("FREQ=DAILY;UNTIL=20300230T000000Z", "not a real"),
        ("FREQ=DAILY;FREQ=WEEKLY", "twice"),
        ("FREQ=DAILY\nDTSTART:20300101T000000Z", "one RRULE line"),
        ("FREQ=DAILY;" + "BYMONTHDAY=1;" * 60, "longer than"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS"),
        ("garbage", "NAME=VALUE"),
    ],
)
def test_bad_rules_are_refused(rule, fragment):
    # Parsing is bounded by the text (at most MAX_RULE_LENGTH characters), not by time.
    with pytest.raises(RuleInvalid) as excinfo:
        parse_rule(rule)
    assert fragment in excinfo.value.message
    assert excinfo.value.field == "rrule"


def test_unknown_time_zone_is_refused():
    with pytest.raises(RuleInvalid) as excinfo:
        build_schedule(start=datetime(2030, 1, 1), timezone_name="Mars/Olympus_Mons")
    assert excinfo.value.field == "timezone"


def test_rrule_prefix_and_case_are_normalised():
    assert parse_rule("rrule:freq=weekly;byday=mo,we").text == "FREQ=WEEKLY;BYDAY=MO,WE"


def test_anchor_dependent_impossibility_is_checked_with_the_real_anchor():
    # From 01:00 every 4 hours reaches 01:00; from 00:00 it never does.
    build_schedule(
        start=datetime(2030, 1, 1, 1), timezone_name="UTC", rrule="FREQ=HOURLY;INTERVAL=4;BYHOUR=1"
    )
    with pytest.raises(RuleInvalid):
        build_schedule(
            start=datetime(2030, 1, 1, 0),
            timezone_name="UTC",
            rrule="FREQ=HOURLY;INTERVAL=4;BYHOUR=1",
        )


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31;UNTIL=20990101T000000Z",
        "FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=31",
        "FREQ=MONTHLY;INTERVAL=12;BYMONTH=3",  # anchored in January: never March
        "FREQ=DAILY;UNTIL=20200101T000000Z",  # over before it starts
    ],
)
@pytest.mark.parametrize("year", [2026, 2299, 2300])
def test_rules_without_a_future_occurrence_are_refused_in_bounded_time(rule, year):
    schedule = build_schedule(start=datetime(year, 1, 10, 9), timezone_name=NY, rrule=rule)
    with pytest.raises(RuleInvalid) as excinfo:
        first_occurrence_after(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    assert excinfo.value.field == "rrule"


@pytest.mark.parametrize("year", [1, 1900, 2026, 2299, 2300, 5000, 9000, 9897])
def test_evaluation_walks_a_bounded_span_of_years(year):
    """What bounds an impossible rule's cost is how many years dateutil walks before it
    stops by itself in 9999: never more than the horizon, two years and one 400-year cycle
    (not the wall clock, which a loaded machine stretches)."""
    walked = 9999 - (year + cycle_shift(year))
    assert walked <= HORIZON_YEARS + 2 + CALENDAR_CYCLE_YEARS
    assert cycle_shift(year) % CALENDAR_CYCLE_YEARS == 0  # the same calendar, moved


def test_a_rare_but_possible_rule_is_found():
    schedule = build_schedule(
        start=datetime(2097, 3, 1, 9), timezone_name=NY, rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"
    )
    first = first_occurrence_after(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    assert first.local.date() == date(2104, 2, 29)  # 2100 is not a leap year


def test_past_one_off_is_refused_on_scheduled_at():
    schedule = build_schedule(start=datetime(2020, 1, 1, 9), timezone_name=NY)
    with pytest.raises(RuleInvalid) as excinfo:
        first_occurrence_after(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    assert excinfo.value.field == "scheduled_at"


def test_upcoming_is_capped_and_starts_after_the_given_instant():
    schedule = build_schedule(
        start=datetime(2026, 1, 1, 9), timezone_name="UTC", rrule="FREQ=DAILY"
    )
    after = datetime(2026, 1, 10, 9, tzinfo=UTC)
    got = schedule.upcoming(after, 1000)
    assert len(got) == MAX_OCCURRENCES_PER_QUERY
    assert got[0].utc == after + timedelta(days=1)


def test_expansion_stops_at_the_horizon():
    schedule = build_schedule(
        start=datetime(2026, 1, 1, 9), timezone_name="UTC", rrule="FREQ=YEARLY"
    )
    got = list(schedule.occurrences())
    assert got[0].utc.year == 2026 and got[-1].utc.year == 2125
