"""The engine's audit: one summary row per batch, transaction and workspace instead of a row
per delivery and campaign transition — and still the answer to "what happened to X"."""

from datetime import timedelta

from django.utils import timezone

from apps.common import audit
from apps.common.models import AuditLog
from apps.integrations.firebase.testing import make_firebase_config
from apps.notifications.models import Delivery, DeliveryStatus
from apps.notifications.testing import make_due_campaigns

ENGINE = ("engine.batch_started", "engine.batch_settled")


def _history(campaign_id) -> list[tuple]:
    """(action, from, to) of a campaign's transitions, in order, from its audit rows."""
    rows = AuditLog.objects.filter(audit.about_campaign(campaign_id)).order_by("created_at")
    own = [
        (row.action, row.metadata.get("from"), row.metadata.get("to"))
        for row in rows
        if row.target_type == "campaigns.campaign" and row.action == "campaign.transition"
    ]
    listed = [
        (e["batch_action"], e["from"], e["to"])
        for e in audit.engine_entries(rows)
        if e["action"] == "campaign.transition" and e["target_id"] == str(campaign_id)
    ]
    return own + listed


def test_one_off_campaigns_cost_one_row_per_batch_and_workspace(
    settings, connected_workspace, make_workspace, demo_account, run_due, fake_fcm
):
    settings.DELIVERY_BATCH_SIZE = 10
    other = make_workspace(name="Other")
    make_firebase_config(other, info=demo_account)
    at = timezone.now() - timedelta(seconds=1)
    deliveries = make_due_campaigns(connected_workspace, 25, at=at)
    deliveries += make_due_campaigns(other, 15, at=at)
    before = AuditLog.objects.count()

    batches = run_due(at)

    assert Delivery.objects.filter(status=DeliveryStatus.COMPLETED).count() == 40
    rows = list(AuditLog.objects.filter(created_at__gte=at).exclude(action__in=ENGINE))
    assert AuditLog.objects.count() - before == AuditLog.objects.filter(action__in=ENGINE).count()
    assert not [r for r in rows if r.action.startswith(("delivery.", "campaign."))]
    engine = list(AuditLog.objects.filter(action__in=ENGINE))
    # A batch holds one workspace's deliveries or several; each writes one row per workspace
    # and transaction (started, settled): 4 batches of 10, 2 workspaces at most — fewer
    # than one row per job even with batches this small (default: 100 a batch).
    assert len(batches) == 4
    assert len(engine) <= 2 * len(batches) * 2 and len(engine) < len(deliveries) / 2
    for row in engine:
        assert row.target_type == "engine.batch" and row.actor_id is None
        assert row.metadata["entries_left_out"] == 0
    settled = [r for r in engine if r.action == "engine.batch_settled"]
    by_workspace = {connected_workspace.pk: 0, other.pk: 0}
    for row in settled:
        by_workspace[row.workspace_id] += row.metadata["counts"]["delivery.completed"]
        assert row.metadata["counts"]["campaign.completed"] == len(row.metadata["campaign_ids"])
    assert by_workspace == {connected_workspace.pk: 25, other.pk: 15}
    started = [r for r in engine if r.action == "engine.batch_started"]
    assert sum(r.metadata["counts"]["campaign.running"] for r in started) == 40
    # Every delivery's outcome is listed in its batch's row, by id, with its campaign.
    listed = {
        e["target_id"]: e["campaign"]
        for e in audit.engine_entries(settled)
        if e["action"] == "delivery.completed"
    }
    assert listed == {str(d.pk): str(d.campaign_id) for d in deliveries}
    for delivery in deliveries:  # and the batch row is found from the delivery's claim token
        delivery.refresh_from_db()
        assert AuditLog.objects.filter(
            action="engine.batch_settled", target_id=str(delivery.claim_token)
        ).exists()


def test_a_campaigns_engine_history_and_a_failures_reason(scheduled, run_due, fake_fcm, api):
    campaign, delivery = scheduled(contents=1)
    fake_fcm.inject({"kind": "unregistered"})
    run_due(delivery.run_at)

    assert _history(campaign.pk) == [
        ("campaign.transition", "draft", "scheduled"),
        ("engine.batch_started", "scheduled", "running"),
        ("engine.batch_settled", "running", "failed"),
    ]
    response = api.get(f"/api/v1/audit-logs?campaign={campaign.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    results = body["results"] if isinstance(body, dict) else body
    actions = [entry["action"] for entry in results]
    assert actions.count("engine.batch_settled") == 1 and "campaign.created" in actions
    settled = next(entry for entry in results if entry["action"] == "engine.batch_settled")
    [failed] = [e for e in settled["metadata"]["entries"] if e["action"] == "delivery.failed"]
    assert failed["target_id"] == str(delivery.pk) and failed["campaign"] == str(campaign.pk)
    assert "UNREGISTERED" in failed["error"] and failed["attempts"] == 1
    assert settled["metadata"]["counts"] == {"delivery.failed": 1, "campaign.failed": 1}
    # Another campaign's rows are not in this one's history.
    other, _ = scheduled(contents=1)
    listed = api.get(f"/api/v1/audit-logs?campaign={other.pk}").json()
    listed = listed["results"] if isinstance(listed, dict) else listed
    assert {entry["target_type"] for entry in listed} == {"campaigns.campaign"}
    assert api.get("/api/v1/audit-logs?campaign=nope").status_code == 400


def test_the_entries_are_capped_and_the_counts_complete(
    settings, connected_workspace, run_due, fake_fcm
):
    settings.AUDIT_BATCH_MAX_ENTRIES = 3
    at = timezone.now() - timedelta(seconds=1)
    make_due_campaigns(connected_workspace, 5, at=at)
    run_due(at)
    settled = AuditLog.objects.get(action="engine.batch_settled")
    # 5 deliveries completed and 5 campaigns completed: 3 listed, 7 only counted.
    assert len(settled.metadata["entries"]) == 3 and settled.metadata["entries_left_out"] == 7
    assert settled.metadata["counts"] == {"delivery.completed": 5, "campaign.completed": 5}
    assert len(settled.metadata["campaign_ids"]) == 5  # a campaign's history stays findable
