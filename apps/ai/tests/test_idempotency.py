"""Idempotency-Key on a route outside the request transaction that calls out (POST
/ai/generate, against the fake OpenAI-compatible server over HTTP): a provider failure (502)
is not recorded, so the retry calls the provider again; a success is, so its replay does not."""

import pytest

from apps.ai.models import AIGeneration, GenerationStatus
from apps.common.models import IdempotencyRecord

GENERATE = "/api/v1/ai/generate"
KEY = {"HTTP_IDEMPOTENCY_KEY": "generate-1"}


@pytest.mark.django_db(transaction=True)  # as in production: outside the request transaction
def test_a_5xx_is_not_recorded_and_the_retry_executes_a_success_is_replayed(
    api, fake_ai, workspace
):
    body = {"prompt": "Our spring sale starts Friday", "tone": "friendly"}
    fake_ai.inject({"kind": "status", "status": 503, "times": 3})
    failed = api.post(GENERATE, body, **KEY)
    assert failed.status_code == 502, failed.content
    assert not IdempotencyRecord.objects.exists()
    calls = len(fake_ai.requests())

    retried = api.post(GENERATE, body, **KEY)
    assert retried.status_code == 200, retried.content
    assert "Idempotent-Replayed" not in retried
    assert len(fake_ai.requests()) == calls + 1  # executed: the provider was called again
    replay = api.post(GENERATE, body, **KEY)
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert replay.content == retried.content
    assert len(fake_ai.requests()) == calls + 1  # not called for the replay
    statuses = sorted(
        AIGeneration.objects.filter(workspace=workspace).values_list("status", flat=True)
    )
    assert statuses == sorted([GenerationStatus.FAILED, GenerationStatus.SUCCEEDED])
