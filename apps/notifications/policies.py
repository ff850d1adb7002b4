"""The engine's side of the workspace's send policies (README "Send policies"): the
frequency cap enforced again when a delivery starts, and the send-rate cap the dispatcher
honours when it claims. Workspaces without a policy cost nothing here: the frequency cap
reads the policy already joined to the batch's locked campaigns, the rate cap a list of
capped workspaces the dispatcher keeps for a tick.

Both records are rows locked while they are read and written, so the check and the write
are one step for every process: two deliveries to one topic cannot both take its last slot
(the topic's TopicSendLog row, FOR UPDATE), two dispatchers cannot both spend one
workspace's minute (its SendRateWindow row, FOR UPDATE SKIP LOCKED: a dispatcher that finds
it taken leaves that workspace to the other for this round, and claims for the rest).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from apps.campaigns import policies as rules
from apps.campaigns.models import SendPolicy
from apps.notifications.models import Delivery, Occurrence, SendRateWindow, TopicSendLog

RATE_WINDOW_SECONDS = 60


# --- the frequency cap, at send time ----------------------------------------------------------
def _policy(workspace) -> SendPolicy | None:
    try:
        return workspace.send_policy  # joined by campaigns.lock_for_sending
    except SendPolicy.DoesNotExist:
        return None


def over_frequency_cap(deliveries: list[Delivery]) -> dict:
    """delivery id -> reason, for the deliveries (about to start, their campaigns locked and
    loaded) that would send to a topic more often than their workspace's cap; the others'
    sends are recorded, in the caller's transaction. A delivery of an occurrence already
    recorded (another zone or language of it, a retry) is the same send: it passes."""
    capped = []
    for delivery in deliveries:
        policy = _policy(delivery.campaign.workspace)
        if policy is not None and policy.has_frequency_cap:
            names = rules.capped_topics(
                topic=delivery.campaign.topic, condition=delivery.campaign.condition
            )
            if names:
                capped.append((delivery, policy, names))
    if not capped:
        return {}
    logs = _locked_logs({(d.workspace_id, name) for d, _, names in capped for name in names})
    instants = dict(
        Occurrence.objects.filter(pk__in={d.occurrence_id for d, _, _ in capped}).values_list(
            "pk", "at"
        )
    )
    refused, changed = {}, set()
    for delivery, policy, names in sorted(capped, key=lambda item: item[0].run_at):
        window = timedelta(hours=policy.frequency_cap_window_hours)
        key, at = str(delivery.occurrence_id), instants[delivery.occurrence_id]
        breach = None
        for name in names:
            sends = logs[(delivery.workspace_id, name)].sends
            if any(sent_key == key for sent_key, _ in sends):
                continue
            found = rules.first_breach(
                [(datetime.fromisoformat(t), k) for k, t in sends] + [(at, key)],
                mine={key}, max_sends=policy.frequency_cap_max_sends, window=window,
            )  # fmt: skip
            if found:
                breach = (name, found)
                break
        if breach is not None:
            name, found = breach
            refused[delivery.pk] = (
                f"FREQUENCY_CAP: '{name}' already has {len(found) - 1} sends within "
                f"{policy.frequency_cap_window_hours} h of this one "
                f"({', '.join(t.isoformat() for t, k in found if k != key)}); the workspace "
                f"allows {policy.frequency_cap_max_sends}."
            )
            continue
        for name in names:
            log = logs[(delivery.workspace_id, name)]
            if not any(sent_key == key for sent_key, _ in log.sends):
                # Kept for the window on both sides (occurrences of zones run out of order).
                log.sends = [
                    [k, t] for k, t in log.sends if abs(datetime.fromisoformat(t) - at) < window
                ] + [[key, at.isoformat()]]
                log.updated_at = timezone.now()
                changed.add(log)
    if changed:
        TopicSendLog.objects.bulk_update(list(changed), ["sends", "updated_at"])
    return refused


def _locked_logs(keys: set[tuple]) -> dict:
    """(workspace id, topic) -> its TopicSendLog, created if new, row-locked, in one order
    for every process (two batches wanting the same topics queue instead of deadlocking)."""
    ordered = sorted(keys, key=lambda key: (str(key[0]), key[1]))
    TopicSendLog.objects.bulk_create(
        [TopicSendLog(workspace_id=w, topic=t) for w, t in ordered], ignore_conflicts=True
    )
    by_workspace = defaultdict(list)
    for workspace_id, topic in ordered:
        by_workspace[workspace_id].append(topic)
    logs = {}
    for workspace_id, names in sorted(by_workspace.items(), key=lambda item: str(item[0])):
        rows = (
            TopicSendLog.objects.select_for_update()
            .filter(workspace_id=workspace_id, topic__in=names)
            .order_by("topic")
        )
        for log in rows:
            logs[(workspace_id, log.topic)] = log
    return logs


# --- the send-rate cap, at claim time ---------------------------------------------------------
class RateRoom:
    """How many deliveries each capped workspace may still be claimed for in this rolling
    minute, with its window row locked by this claim (until the claim commits)."""

    def __init__(self, caps: dict[str, int], now: datetime) -> None:
        self.second = int(now.timestamp())
        self.rows: dict[str, SendRateWindow] = {}
        self.room: dict[str, int] = {}
        if not caps:
            return
        rows = self._locked(list(caps))
        missing = set(caps) - {str(row.workspace_id) for row in rows}
        if missing:
            # Locked by another dispatcher, or new. Only new ones are inserted: an insert that
            # meets a row another claim is writing would wait for it, where SKIP LOCKED moves on.
            new = missing - {
                str(pk)
                for pk in SendRateWindow.objects.filter(workspace_id__in=missing).values_list(
                    "workspace_id", flat=True
                )
            }
            if new:
                SendRateWindow.objects.bulk_create(
                    [SendRateWindow(workspace_id=w) for w in sorted(new)], ignore_conflicts=True
                )
                rows += self._locked(sorted(new))
        for row in rows:
            workspace = str(row.workspace_id)
            row.claims = [[s, n] for s, n in row.claims if s > self.second - RATE_WINDOW_SECONDS]
            self.rows[workspace] = row
            self.room[workspace] = max(0, caps[workspace] - sum(n for _, n in row.claims))
        for workspace in caps:  # another dispatcher holds its row: it claims for it now
            self.room.setdefault(workspace, 0)

    @staticmethod
    def _locked(workspaces: list) -> list[SendRateWindow]:
        rows = SendRateWindow.objects.filter(workspace_id__in=workspaces).order_by("workspace_id")
        if connection.features.has_select_for_update_skip_locked:
            return list(rows.select_for_update(skip_locked=True))
        return list(rows.select_for_update())

    def limit(self, due: dict) -> dict:
        """`due` (workspace -> count) with each capped workspace's count cut to its room."""
        return {
            w: min(n, self.room[w]) if w in self.room else n
            for w, n in due.items()
            if w not in self.room or self.room[w] > 0
        }

    def spend(self, claimed: list[tuple]) -> None:
        """Record what the claim took ((delivery id, workspace id) pairs)."""
        if not self.rows:
            return
        taken = defaultdict(int)
        for _, workspace in claimed:
            taken[_text(workspace)] += 1
        changed = []
        for workspace, row in self.rows.items():
            if taken[workspace]:
                row.claims.append([self.second, taken[workspace]])
                row.updated_at = timezone.now()
                changed.append(row)
        if changed:
            SendRateWindow.objects.bulk_update(changed, ["claims", "updated_at"])


def _text(workspace_id) -> str:
    """A workspace id as the dispatcher's claims carry it (PostgreSQL: text with dashes;
    SQLite: 32 hex digits) in one spelling."""
    return str(uuid.UUID(str(workspace_id)))
