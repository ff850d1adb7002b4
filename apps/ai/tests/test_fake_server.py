"""The fake OpenAI-compatible server itself: standalone process, control endpoint, auth."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
from django.conf import settings

from apps.ai.fake import FakeAIControl, FakeAIServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_standalone_server_speaks_the_openai_protocol():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.ai.fake", "--port", str(port), "--quiet"],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        assert f"127.0.0.1:{port}/v1" in banner
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="anything", max_retries=0, timeout=5
        )
        assert [model.id for model in client.models.list()] == ["fake-gpt"]

        FakeAIControl(f"http://127.0.0.1:{port}").inject({"kind": "status", "status": 503})
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": json.dumps({"variants": 2})}]
        )
        assert len(json.loads(reply.choices[0].message.content)["variants"]) == 2
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0


def test_control_endpoint_rejects_unknown_faults():
    with FakeAIServer() as fake:
        request = urllib.request.Request(
            f"{fake.url}/_fake/faults",
            data=json.dumps({"faults": [{"kind": "gremlins"}]}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 400
        assert FakeAIControl(fake.url).pending_faults() == 0


def test_faults_apply_in_order_and_times_repeats():
    with FakeAIServer() as fake:
        control = FakeAIControl(fake.url)
        assert (
            control.inject({"kind": "status", "status": 500, "times": 2}, {"kind": "disconnect"})
            == 3
        )
        client = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=5)
        messages = [{"role": "user", "content": "hi"}]
        for expected in (openai.InternalServerError, openai.InternalServerError):
            with pytest.raises(expected):
                client.chat.completions.create(model="m", messages=messages)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=messages)
        assert client.chat.completions.create(model="m", messages=messages).choices
        assert len(control.requests()) == 4


def test_timeout_fault_outlasts_a_short_client_timeout():
    with FakeAIServer() as fake:
        FakeAIControl(fake.url).inject({"kind": "timeout", "seconds": 1})
        client = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert time.monotonic() - started < 0.9


def test_a_required_key_is_checked():
    with FakeAIServer(api_key="right") as fake:
        wrong = openai.OpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0, timeout=5)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        right = openai.OpenAI(base_url=fake.base_url, api_key="right", max_retries=0, timeout=5)
        assert right.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        ).choices
