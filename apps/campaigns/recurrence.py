"""Recurrence rules (RFC 5545 RRULE) with exact time-zone semantics. Pure: no database.

A schedule is a wall-clock anchor (`start_local`, a naive local date-time), an IANA time
zone, an optional RRULE and optional exclusion dates. Occurrences are computed like this:

1. **Wall clock.** The rule is expanded in local wall-clock time (python-dateutil `rrule`
   with a naive DTSTART), then each local time is mapped to one UTC instant with
   `zoneinfo`. "Every day 09:00 Europe/Paris" is 09:00 local on both sides of a DST change.
2. **Spring-forward gap.** A local time that does not exist is sent once that day, shifted
   forward by the length of the gap: 02:30 America/New_York on 2007-03-11 -> 03:30 local,
   07:30Z. (This is PEP 495 `fold=0`, i.e. the UTC offset before the transition, as
   RFC 5545 §3.3.5 prescribes.)
3. **Fall-back overlap.** A local time that happens twice is sent once, at the first
   instant: 01:30 America/New_York on 2007-11-04 -> 05:30Z (01:30 EDT), never 06:30Z.
4. **No duplicate instants.** Occurrences are emitted in strictly increasing UTC order; two
   local times that map to the same instant (an hourly rule across a spring-forward gap:
   02:00 shifted to 03:00 and the real 03:00) are sent once, and count once: COUNT is the
   number of distinct instants (RFC 5545 §3.3.10: an instance at a time that does not exist
   is not counted), so an hourly COUNT=4 from 00:00 on a spring-forward day is sent at
   00:00, 01:00, 03:00 and 04:00. An excluded date still uses up its instance, as EXDATE
   does in RFC 5545.
5. **UNTIL.** `UNTIL=20071224T140000Z` (UTC, trailing Z) is compared with the UTC instant
   of each occurrence. `UNTIL=20071224T090000` (no Z, "floating") is local wall-clock time
   in the schedule's zone. `UNTIL=20071224` (a DATE) includes that whole local day. The
   value never reaches dateutil as an aware/naive mix: it is converted here first.
6. **DTSTART** is the anchor, to the microsecond given (dateutil expands whole seconds;
   every occurrence keeps the anchor's fraction of a second, so none is sent before the
   instant asked for); like python-dateutil (and unlike RFC 5545's "DTSTART is
   always the first instance") an anchor that does not match the rule is not itself an
   occurrence: "BYDAY=FR" anchored on a Tuesday starts on the Friday.
7. **Exclusion dates** are local calendar dates; an occurrence whose local (wall-clock)
   date is excluded is skipped.
8. **Bounded.** FREQ=SECONDLY and MINUTELY are refused; BYSECOND is refused (seconds come
   from the anchor); BYMINUTE takes at most 12 values (at most 12 sends an hour); COUNT is
   1..10,000; COUNT together with UNTIL is refused (RFC 5545 forbids it); INTERVAL is
   1..1,000; the rule text is at most 500 characters; BYEASTER and other non-RFC parts are
   refused. Evaluation covers at most 100 years after the anchor and 100,000 expanded
   occurrences; past that a rule is treated as exhausted (an hourly rule without COUNT
   or UNTIL is evaluated for about 11 years). A rule with no occurrence after
   "now" inside that horizon (e.g. `FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30`) is refused.

Why evaluation is bounded in time even for an impossible rule: dateutil only checks UNTIL
when a candidate passes every BY* filter, so a rule that never matches again makes it walk
day by day to year 9999 (seconds of CPU). The Gregorian calendar repeats exactly every
400 years (146,097 days = 20,871 weeks: same weekdays, leap years and ISO weeks), so the
rule is expanded with its anchor moved forward by a multiple of 400 years to just over
the horizon below year 9999, where dateutil stops by itself; results are moved back.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule as du_rrule

from apps.common.timezones import get_zone, is_known_timezone

MAX_RULE_LENGTH = 500
MAX_COUNT = 10_000
MAX_INTERVAL = 1_000
MAX_BYMINUTE_VALUES = 12
MAX_EXCLUSION_DATES = 366
MAX_OCCURRENCES_PER_QUERY = 100
HORIZON_YEARS = 100
MAX_EXPANSIONS = 100_000
CALENDAR_CYCLE_YEARS = 400

# A local time maps to UTC within [local - 14h, local + 12h] for every real zone; a look-ahead
# longer than the widest possible offset swing (Samoa skipped a whole day in 2011) guarantees
# that nothing expanded later can land before what has been emitted.
_REORDER_WINDOW = timedelta(hours=50)

FREQUENCIES = {
    "YEARLY": du_rrule.YEARLY,
    "MONTHLY": du_rrule.MONTHLY,
    "WEEKLY": du_rrule.WEEKLY,
    "DAILY": du_rrule.DAILY,
    "HOURLY": du_rrule.HOURLY,
}
REFUSED_FREQUENCIES = {"MINUTELY", "SECONDLY"}
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

# part -> (smallest, largest, may be negative)
_NUMERIC_LISTS = {
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYHOUR": (0, 23, False),
    "BYMINUTE": (0, 59, False),
    "BYSETPOS": (1, 366, True),
}
_ALLOWED_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST", *_NUMERIC_LISTS}
_BYDAY_ITEM = re.compile(r"^([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_VALUE = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")
_INTEGER = re.compile(r"^[+-]?\d{1,6}$")


class RuleInvalid(ValueError):
    """A schedule that cannot be accepted. `field` names the input it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Occurrence:
    utc: datetime  # aware, UTC
    local: datetime  # aware, in the schedule's zone (after gap/overlap resolution)


@dataclass(frozen=True)
class ParsedRule:
    text: str  # normalised RRULE value (upper case, no "RRULE:" prefix), UNTIL included
    freq: str
    count: int | None
    core: str  # the rule without UNTIL and COUNT, as handed to dateutil
    until_utc: datetime | None = None  # UNTIL given with a trailing Z
    until_local: datetime | None = None  # UNTIL given as local (floating) time or a DATE


# --- time-zone mapping ------------------------------------------------------------------------
def zone_for(name: str) -> ZoneInfo:
    if not is_known_timezone(name):
        raise RuleInvalid("timezone", f"Unknown time zone '{name}'; use an IANA name.")
    return get_zone(name)


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The one instant a naive local wall-clock time is sent at.

    `fold=0` gives the first of two instants in a fall-back overlap, and for a time inside
    a spring-forward gap applies the pre-transition offset, which lands exactly
    "gap length" later on the wall clock (02:30 EST-that-never-was == 03:30 EDT).
    """
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def local_anchor(value: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock anchor for a user-supplied start: an aware value is converted
    to the zone; a naive value already is local wall-clock time. Its precision is kept."""
    if value.tzinfo is not None:
        value = value.astimezone(zone).replace(tzinfo=None)
    return value


# --- parsing ----------------------------------------------------------------------------------
def parse_rule(text: str) -> ParsedRule:
    """Validate and normalise one RRULE value. Raises RuleInvalid("rrule", ...)."""

    def refuse(message: str) -> RuleInvalid:
        return RuleInvalid("rrule", message)

    if not isinstance(text, str):
        raise refuse("The rule must be a string.")
    text = text.strip()
    if len(text) > MAX_RULE_LENGTH:
        raise refuse(f"The rule is longer than {MAX_RULE_LENGTH} characters.")
    if "\n" in text or "\r" in text:
        raise refuse("Give one RRULE line; DTSTART comes from scheduled_at and timezone.")
    upper = text.upper()
    if upper.startswith("RRULE:"):
        upper = upper[len("RRULE:") :]
    if not upper:
        raise refuse("The rule is empty.")

    parts: dict[str, str] = {}
    for chunk in upper.split(";"):
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise refuse(f"'{chunk}' is not NAME=VALUE.")
        if name not in _ALLOWED_PARTS:
            if name == "BYSECOND":
                raise refuse("BYSECOND is not supported; seconds come from scheduled_at.")
            raise refuse(f"'{name}' is not a supported rule part.")
        if name in parts:
            raise refuse(f"'{name}' is given twice.")
        parts[name] = value

    freq = parts.get("FREQ")
    if freq is None:
        raise refuse("FREQ is required.")
    if freq in REFUSED_FREQUENCIES:
        raise refuse(f"FREQ={freq} is not allowed; the shortest frequency is HOURLY.")
    if freq not in FREQUENCIES:
        raise refuse(f"Unknown FREQ '{freq}'.")

    count = None
    if "COUNT" in parts:
        count = _integer(parts["COUNT"], "COUNT")
        if not 1 <= count <= MAX_COUNT:
            raise refuse(f"COUNT must be between 1 and {MAX_COUNT}.")
    if "INTERVAL" in parts:
        interval = _integer(parts["INTERVAL"], "INTERVAL")
        if not 1 <= interval <= MAX_INTERVAL:
            raise refuse(f"INTERVAL must be between 1 and {MAX_INTERVAL}.")
    if count is not None and "UNTIL" in parts:
        raise refuse("COUNT and UNTIL cannot be used together (RFC 5545).")

    for name, (low, high, signed) in _NUMERIC_LISTS.items():
        if name in parts:
            values = [_integer(item, name) for item in parts[name].split(",")]
            for value in values:
                magnitude = abs(value) if signed else value
                if not low <= magnitude <= high or (value < 0 and not signed):
                    raise refuse(f"{name} value {value} is out of range.")
            if name == "BYMINUTE" and len(set(values)) > MAX_BYMINUTE_VALUES:
                raise refuse(f"BYMINUTE takes at most {MAX_BYMINUTE_VALUES} values.")
    if "BYSETPOS" in parts and not any(
        key in parts for key in ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH")
    ):
        raise refuse("BYSETPOS needs another BYxxx part to select from.")
    if "BYDAY" in parts:
        for item in parts["BYDAY"].split(","):
            match = _BYDAY_ITEM.match(item.strip())
            if not match:
                raise refuse(f"BYDAY value '{item}' is not like MO, 1FR or -1SU.")
            if match.group(2) is not None and not 1 <= int(match.group(2)) <= 53:
                raise refuse(f"BYDAY value '{item}' is out of range.")
    if "WKST" in parts and parts["WKST"] not in WEEKDAYS:
        raise refuse("WKST must be one of MO, TU, WE, TH, FR, SA, SU.")

    until_utc = until_local = None
    if "UNTIL" in parts:
        until_utc, until_local = _parse_until(parts["UNTIL"])

    # COUNT and UNTIL are applied here, not by dateutil (see the module docstring).
    core = ";".join(
        f"{name}={value}" for name, value in parts.items() if name not in ("UNTIL", "COUNT")
    )
    normalised = ";".join(f"{name}={value}" for name, value in parts.items())
    return ParsedRule(
        text=normalised,
        freq=freq,
        count=count,
        core=core,
        until_utc=until_utc,
        until_local=until_local,
    )


def _integer(value: str, name: str) -> int:
    value = value.strip()
    if not _INTEGER.match(value):
        raise RuleInvalid("rrule", f"{name} value '{value[:20]}' is not a small integer.")
    return int(value)


def _parse_until(value: str) -> tuple[datetime | None, datetime | None]:
    match = _UNTIL_VALUE.match(value)
    if not match:
        raise RuleInvalid("rrule", "UNTIL must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ.")
    day, clock, zulu = match.groups()
    try:
        if clock is None:
            # A DATE: the whole local day is included.
            moment = datetime.strptime(day, "%Y%m%d") + timedelta(days=1, microseconds=-1)
        else:
            moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError:
        raise RuleInvalid("rrule", f"UNTIL '{value}' is not a real date-time.") from None
    if zulu:
        return moment.replace(tzinfo=UTC), None
    return None, moment


def parse_exclusion_dates(values: Iterable) -> frozenset[date]:
    result = set()
    values = list(values or [])
    if len(values) > MAX_EXCLUSION_DATES:
        raise RuleInvalid(
            "exclusion_dates", f"At most {MAX_EXCLUSION_DATES} exclusion dates are allowed."
        )
    for value in values:
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            result.add(value)
            continue
        try:
            result.add(date.fromisoformat(str(value)))
        except ValueError:
            raise RuleInvalid("exclusion_dates", f"'{value}' is not a YYYY-MM-DD date.") from None
    return frozenset(result)


# --- evaluation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    start_local: datetime  # naive wall-clock anchor
    zone: ZoneInfo
    rule: ParsedRule | None = None
    exclusion_dates: frozenset[date] = field(default_factory=frozenset)

    @property
    def is_recurring(self) -> bool:
        return self.rule is not None

    def occurrences(self, after: datetime | None = None) -> Iterator[Occurrence]:
        """Occurrences in strictly increasing UTC order; only those strictly after `after`
        (an aware datetime) when it is given."""
        for instant in _ordered_instants(self):
            if after is not None and instant <= after:
                continue
            yield Occurrence(utc=instant, local=instant.astimezone(self.zone))

    def next_after(self, after: datetime) -> Occurrence | None:
        return next(self.occurrences(after), None)

    def upcoming(self, after: datetime, count: int) -> list[Occurrence]:
        count = max(0, min(count, MAX_OCCURRENCES_PER_QUERY))
        result = []
        for occurrence in self.occurrences(after):
            if len(result) >= count:
                break
            result.append(occurrence)
        return result


def build_schedule(
    *,
    start: datetime,
    timezone_name: str,
    rrule: str | None = None,
    exclusion_dates: Iterable = (),
) -> Schedule:
    """Validate the inputs and return a Schedule. `start` aware (any offset) or naive
    (local wall-clock time in `timezone_name`)."""
    zone = zone_for(timezone_name)
    start_local = local_anchor(start, zone)
    if start_local.year + HORIZON_YEARS + 2 > 9999:
        raise RuleInvalid("scheduled_at", "This date is too far in the future.")
    rule = parse_rule(rrule) if rrule else None
    if rule is not None:
        # dateutil refuses some rules only for a given anchor (e.g. FREQ=HOURLY;INTERVAL=4;
        # BYHOUR=1 cannot be reached from 00:00), so it checks the rule with the real one.
        try:
            du_rrule.rrulestr(rule.core, dtstart=start_local)
        except (ValueError, TypeError, OverflowError) as exc:
            raise RuleInvalid("rrule", f"The rule is not valid: {exc}") from None
    return Schedule(
        start_local=start_local,
        zone=zone,
        rule=rule,
        exclusion_dates=parse_exclusion_dates(exclusion_dates),
    )


NO_OCCURRENCE = (
    f"The rule has no occurrence after now within {HORIZON_YEARS} years of scheduled_at "
    "(it may be impossible, already over, or excluded)."
)


def first_occurrence_after(schedule: Schedule, now: datetime) -> Occurrence:
    """The first run after `now`, or RuleInvalid saying why there is none."""
    occurrence = schedule.next_after(now)
    if occurrence is not None:
        return occurrence
    if schedule.rule is None:
        raise RuleInvalid("scheduled_at", "The scheduled time must be in the future.")
    raise RuleInvalid("rrule", NO_OCCURRENCE)


def ensure_possible(schedule: Schedule) -> None:
    """RuleInvalid when the rule has no occurrence at all from its anchor (an impossible
    rule such as BYMONTH=2;BYMONTHDAY=30): refused when it is written, not only later."""
    if schedule.rule is not None and next(schedule.occurrences(), None) is None:
        raise RuleInvalid("rrule", NO_OCCURRENCE)


def _local_times(schedule: Schedule) -> Iterator[tuple[datetime, bool]]:
    """(naive local occurrence, excluded?) in increasing wall-clock order, the local UNTIL
    applied, bounded by the horizon and the expansion budget."""
    start = schedule.start_local
    end = _add_years(start, HORIZON_YEARS)  # exclusive
    rule = schedule.rule
    if rule is None:
        yield start, start.date() in schedule.exclusion_dates
        return
    fraction = timedelta(microseconds=start.microsecond)  # dateutil expands whole seconds
    start = start.replace(microsecond=0)

    shift_years = cycle_shift(start.year)

    until = rule.until_local
    if rule.until_utc is not None:
        # The local bound is loose (a day of slack covers any offset); the exact test is
        # made on the UTC instant in _ordered_instants.
        until = rule.until_utc.astimezone(schedule.zone).replace(tzinfo=None) + timedelta(days=1)
    if until is not None and until >= end:
        until = None  # the horizon stops the expansion first

    try:
        expansion = du_rrule.rrulestr(rule.core, dtstart=_shift(start, shift_years))
        if until is not None:
            expansion = expansion.replace(until=_shift(until, shift_years))
        for index, shifted in enumerate(expansion):
            if index >= MAX_EXPANSIONS:
                return
            local = _shift(shifted, -shift_years) + fraction
            if local >= end:
                return
            yield local, local.date() in schedule.exclusion_dates
    except (ValueError, OverflowError) as exc:  # dateutil ran off its calendar
        raise RuleInvalid("rrule", f"The rule cannot be evaluated: {exc}") from None


def cycle_shift(year: int) -> int:
    """Years to move an anchor forward, by whole 400-year cycles, so that year 9999 (where
    dateutil stops on its own) is just past the horizon: the most dateutil ever walks is
    9999 - (year + shift), at most HORIZON_YEARS + 2 + one cycle (the module docstring)."""
    cycles = (9999 - HORIZON_YEARS - 2 - year) // CALENDAR_CYCLE_YEARS
    return max(0, cycles) * CALENDAR_CYCLE_YEARS


def _add_years(value: datetime, years: int) -> datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February in a common year
        return value.replace(year=value.year + years, day=28)


def _shift(value: datetime, years: int) -> datetime:
    # Safe for 29 February: leap years repeat with the 400-year cycle.
    return value.replace(year=value.year + years) if years else value


def _ordered_instants(schedule: Schedule) -> Iterator[datetime]:
    """UTC instants, strictly increasing, deduplicated, COUNT and the UTC UNTIL applied,
    excluded dates left out (after counting).

    Local expansion order is not UTC order around a gap (02:15 -> 07:15Z comes before
    03:00 -> 07:00Z), so instants wait in a heap until the expansion has moved more than
    any offset swing past them."""
    rule = schedule.rule
    until_utc = rule.until_utc if rule else None
    remaining = rule.count if rule and rule.count is not None else -1  # -1: no COUNT
    heap: list[tuple[datetime, bool]] = []
    last: datetime | None = None

    def release(entry: tuple[datetime, bool]) -> Iterator[datetime]:
        nonlocal last, remaining
        candidate, excluded = entry
        if last is not None and candidate <= last:
            return  # the same instant as one already counted: not another instance
        last = candidate
        remaining -= 1
        if not excluded:
            yield candidate

    for local, excluded in _local_times(schedule):
        instant = to_utc(local, schedule.zone)
        if until_utc is not None and instant > until_utc:
            # Later local times can still map earlier only within the reorder window.
            if local.replace(tzinfo=UTC) - _REORDER_WINDOW > until_utc:
                break
            continue
        heapq.heappush(heap, (instant, excluded))
        watermark = local.replace(tzinfo=UTC) - _REORDER_WINDOW
        while heap and heap[0][0] <= watermark:
            yield from release(heapq.heappop(heap))
            if remaining == 0:
                return
    while heap and remaining != 0:
        yield from release(heapq.heappop(heap))
