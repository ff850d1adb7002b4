"""A workspace's send policies as rules (README "Send policies"): pure functions of the
policy row, shared by scheduling (the plan, the 409s), the planner and the engine.

* **Quiet hours** `[start, end)` in local wall-clock time, wrapping midnight when start >
  end (21:00-08:00). `quiet_until` says when the window that holds an instant ends, in one
  zone, with the project's one local-time rule (apps.campaigns.recurrence.to_utc): an end
  inside a DST gap is the gap's length later on the wall clock, an end that happens twice
  is its first instant. Comparing wall-clock times (not offsets from midnight) keeps a
  window the same local hours on the days the clocks change.
* **Frequency cap**: at most `max_sends` sends to one app topic in any rolling
  `window_hours`. The topics a target names for the cap are its app topics that are not
  negated: `'news' in topics && !('muted' in topics)` counts as a send to `news`, not to
  `muted`; reserved `pushpilot-*` topics (zones, languages, buckets) are the engine's split
  of one send and never count. One occurrence is one send, at its instant, however many
  deliveries (zones, languages, variants) carry it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from apps.campaigns import recurrence
from apps.campaigns.models import Campaign, QuietHours, SendPolicy
from apps.devices import topics as reserved
from apps.integrations.firebase.validation import parse_condition


def _inside(local: time, start: time, end: time) -> bool:
    if start < end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight


def quiet_until(instant: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """The instant the quiet window holding `instant` ends in `zone`, or None when `instant`
    is outside it."""
    local = instant.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if not _inside(wall, start, end):
        return None
    day = local.date()
    if start > end and wall >= start:
        day += timedelta(days=1)  # the evening part of a window that ends tomorrow morning
    ends = recurrence.to_utc(datetime.combine(day, end), zone)
    # The end's first instant can precede `instant` in a fall-back overlap: send then, now.
    return max(ends, instant)


@dataclass(frozen=True)
class QuietRule:
    """The quiet hours as they apply to one campaign."""

    start: time
    end: time
    mode: str  # QuietHoursMode
    action: str  # QuietHours.DEFER or SKIP
    workspace_zone: str

    def until(self, instant: datetime, zone_name: str | None = None) -> datetime | None:
        zone = recurrence.zone_for(zone_name or self.workspace_zone)
        return quiet_until(instant, zone, self.start, self.end)

    def reason(self, zone_name: str | None = None) -> str:
        where = zone_name or self.workspace_zone
        return (
            f"QUIET_HOURS: inside the workspace's quiet hours ({self.start:%H:%M}-"
            f"{self.end:%H:%M} {where}); the campaign skips such deliveries."
        )


def quiet_rule(campaign: Campaign, policy: SendPolicy | None) -> QuietRule | None:
    """The quiet hours a campaign's deliveries honour, or None (no window, or the campaign
    ignores them)."""
    if policy is None or not policy.has_quiet_hours or campaign.quiet_hours == QuietHours.IGNORE:
        return None
    return QuietRule(
        start=policy.quiet_hours_start,
        end=policy.quiet_hours_end,
        mode=policy.quiet_hours_mode,
        action=campaign.quiet_hours,
        workspace_zone=campaign.workspace.timezone or "UTC",
    )


def capped_topics(*, topic: str, condition: str) -> list[str]:
    """The app topics a target sends to, for the frequency cap (see the module's doc)."""
    if topic:
        names = [topic]
    else:
        tree, _ = parse_condition(condition)
        names = []
        _positive(tree, False, names)
    return sorted({name for name in names if not name.startswith(reserved.RESERVED_PREFIX)})


def _positive(node, negated: bool, out: list[str]) -> None:
    kind, value = node
    if kind == "topic":
        if not negated:
            out.append(value)
    elif kind == "not":
        _positive(value, not negated, out)
    else:
        for child in value:
            _positive(child, negated, out)


def first_breach(
    instants: Iterable[tuple[datetime, object]], *, mine: set, max_sends: int, window: timedelta
) -> list[tuple[datetime, object]]:
    """The earliest window [s, s + `window`) holding more than `max_sends` of `instants`
    ((instant, key) pairs; one key is one send) and at least one key of `mine`: its sends,
    in order; [] when there is none."""
    ordered = sorted(set(instants), key=lambda item: (item[0], str(item[1])))
    high = 0
    for low, (start, _) in enumerate(ordered):
        high = max(high, low)
        while high < len(ordered) and ordered[high][0] < start + window:
            high += 1
        inside = ordered[low:high]
        if len(inside) > max_sends and any(key in mine for _, key in inside):
            return inside
    return []
