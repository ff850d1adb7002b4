"""The Firebase connection API, against the fake FCM over real HTTP."""

import json
import logging

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command

from apps.common.models import AuditLog
from apps.integrations.firebase import crypto
from apps.integrations.firebase.credentials import parse_service_account
from apps.integrations.firebase.fake import make_demo_service_account
from apps.integrations.firebase.models import FirebaseConfig
from apps.integrations.firebase.selectors import service_account_of

URL = "/api/v1/integrations/firebase"


@pytest.fixture(autouse=True)
def _fresh_keys():
    crypto.reset_keys()
    yield
    crypto.reset_keys()


def connect(api, account, project_id="demo-project"):
    return api.put(URL, {"project_id": project_id, "service_account": account}, format="json")


def secret_fragment(account) -> str:
    return account["private_key"].splitlines()[5]  # a line from the middle of the key


def test_connect_verifies_stores_encrypted_and_never_shows_the_secret(api, demo_account, caplog):
    caplog.set_level(logging.DEBUG)
    response = connect(api, demo_account)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "connected" and body["project_id"] == "demo-project"
    assert body["client_email"] == demo_account["client_email"]
    assert body["key_fingerprint"].startswith("SHA256:")
    assert set(body) == {"project_id", "client_email", "key_fingerprint", "status",
                         "last_tested_at", "last_error", "created_at", "updated_at"}  # fmt: skip

    config = FirebaseConfig.objects.get()
    assert "PRIVATE KEY" not in config.encrypted_credentials
    assert secret_fragment(demo_account) not in config.encrypted_credentials
    assert service_account_of(config)["private_key"] == demo_account["private_key"]

    fragment = secret_fragment(demo_account)
    assert fragment not in api.get(URL).content.decode()
    assert all(fragment not in json.dumps(row.metadata) for row in AuditLog.objects.all())
    assert caplog.records  # the request lines were captured, so the next check means something
    assert all(fragment not in record.getMessage() for record in caplog.records)
    assert fragment not in repr(config) and fragment not in str(config)
    assert AuditLog.objects.filter(action="firebase.connected").exists()


def test_an_account_the_token_endpoint_refuses_is_stored_as_error(
    api, fake_fcm, demo_account, caplog
):
    caplog.set_level(logging.DEBUG)
    unknown = make_demo_service_account("demo-project", token_uri=fake_fcm.token_uri)
    response = connect(api, unknown)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and "AUTH_FAILED" in body["last_error"]
    assert FirebaseConfig.objects.get().status == "error"  # stored, with the reason
    fragment = secret_fragment(unknown)
    assert fragment not in response.content.decode()
    assert any("firebase_check_failed" in record.getMessage() for record in caplog.records)
    assert all(fragment not in record.getMessage() for record in caplog.records)


def test_reconnecting_checks_the_account_again(api, fake_fcm, demo_account):
    assert connect(api, demo_account).json()["status"] == "connected"
    assert connect(api, demo_account).json()["status"] == "connected"
    assert fake_fcm.token_requests == 2  # a cached token proves nothing about the account now
    assert FirebaseConfig.objects.count() == 1
    assert AuditLog.objects.filter(action="firebase.updated").exists()


def test_the_file_text_is_accepted_as_well_as_the_object(api, demo_account):
    response = connect(api, json.dumps(demo_account))
    assert response.status_code == 200 and response.json()["status"] == "connected"


def test_a_body_that_is_not_json_is_400_and_stores_nothing(api, demo_account):
    text = json.dumps({"project_id": "demo-project", "service_account": demo_account})
    response = api.generic("PUT", URL, text[:-40], content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "PARSE_ERROR"
    assert secret_fragment(demo_account) not in response.content.decode()
    assert not FirebaseConfig.objects.exists()


def test_the_admin_never_shows_the_secret(api, demo_account, make_user, client):
    connect(api, demo_account)
    config = FirebaseConfig.objects.get()
    client.force_login(make_user(is_staff=True, is_superuser=True))
    pages = [
        client.get("/admin/firebase/firebaseconfig/"),
        client.get(f"/admin/firebase/firebaseconfig/{config.pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert secret_fragment(demo_account) not in html
        assert config.encrypted_credentials not in html
    assert config.key_fingerprint in pages[1].content.decode()


def _rsa_pem(bits: int) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_the_token_uri_must_be_googles_or_the_configured_stand_ins(
    api, fake_fcm, demo_account, settings
):
    for elsewhere in ("http://169.254.169.254/computeMetadata/v1/", "http://127.0.0.1:5432/"):
        response = connect(api, {**demo_account, "token_uri": elsewhere})
        assert response.status_code == 400
        assert "service_account.token_uri" in response.json()["error"]["details"]
    assert fake_fcm.token_requests == 0 and not FirebaseConfig.objects.exists()
    # Against the real FCM, even the fake's token endpoint is refused.
    settings.FCM_BASE_URL = "https://fcm.googleapis.com"
    assert connect(api, demo_account).status_code == 400
    real = {**demo_account, "token_uri": "https://oauth2.googleapis.com/token"}
    assert parse_service_account(real, project_id="demo-project")[0]["token_uri"] == (
        "https://oauth2.googleapis.com/token"
    )


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "mutate,field,code",
    [
        (lambda a: "not an object", "service_account", "VALIDATION_ERROR"),
        (lambda a: json.dumps(a)[:-30], "service_account", "VALIDATION_ERROR"),
        (lambda a: [a], "service_account", "VALIDATION_ERROR"),
        (lambda a: {**a, "type": "authorized_user"}, "service_account.type", "VALIDATION_ERROR"),
        (
            lambda a: {k: v for k, v in a.items() if k != "client_email"},
            "service_account.client_email",
            "VALIDATION_ERROR",
        ),
        (
            lambda a: {
                **a,
                "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
            },
            "service_account.private_key",
            "VALIDATION_ERROR",
        ),
        (
            lambda a: {**a, "private_key": _ec_pem()},
            "service_account.private_key",
            "VALIDATION_ERROR",
        ),
        (lambda a: {**a, "project_id": "other-project"}, "project_id", "VALIDATION_ERROR"),
        (
            lambda a: {**a, "private_key": _rsa_pem(1024)},
            "service_account.private_key",
            "VALIDATION_ERROR",
        ),
    ],
    ids=[
        "malformed",
        "truncated file text",
        "a list",
        "wrong type",
        "missing field",
        "not a key",
        "EC key",
        "project mismatch",
        "1024-bit key",
    ],
)
def test_bad_credentials_are_400_and_store_nothing(api, demo_account, mutate, field, code):
    response = connect(api, mutate(demo_account))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and field in error["details"]
    assert secret_fragment(demo_account) not in response.content.decode()
    assert not FirebaseConfig.objects.exists()


def test_a_legacy_server_key_is_refused_with_an_explanation(api):
    response = api.put(URL, {"project_id": "demo-project", "server_key": "AAAA:xyz"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "LEGACY_SERVER_KEY_UNSUPPORTED"
    assert (
        "service-account JSON" in error["message"] and "AAAA:xyz" not in response.content.decode()
    )
    assert not FirebaseConfig.objects.exists()


def test_only_admins_manage_the_connection(member_api, demo_account):
    assert member_api.get(URL).status_code == 403
    assert connect(member_api, demo_account).status_code == 403


def test_test_send_records_the_outcome(api, fake_fcm, demo_account):
    connect(api, demo_account)
    response = api.post(URL + "/test", {}, format="json")
    assert response.status_code == 200 and response.json()["ok"] is True
    [sent] = fake_fcm.messages("demo-project")
    assert sent["message"]["topic"] == "pushpilot-test"
    assert sent["message"]["notification"]["body"] == "Firebase connected!"
    assert response.json()["message_id"].endswith(sent["message_id"])

    only_check = api.post(URL + "/test", {"validate_only": True, "topic": "qa"}, format="json")
    assert only_check.json()["ok"] is True and len(fake_fcm.messages()) == 1

    fake_fcm.inject({"kind": "sender_id_mismatch"})
    failed = api.post(URL + "/test", {}, format="json").json()
    assert failed["ok"] is False and failed["error"]["code"] == "SENDER_ID_MISMATCH"
    assert api.get(URL).json()["status"] == "error"
    assert api.post(URL + "/test", {}, format="json").json()["ok"] is True
    assert api.get(URL).json()["status"] == "connected"

    bad_topic = api.post(URL + "/test", {"topic": "no spaces allowed"}, format="json")
    assert bad_topic.status_code == 400 and "topic" in bad_topic.json()["error"]["details"]


def test_test_send_without_a_connection_is_409(api):
    response = api.post(URL + "/test", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "FIREBASE_NOT_CONNECTED"


def test_disconnect(api, demo_account):
    connect(api, demo_account)
    assert api.delete(URL).status_code == 204
    assert api.get(URL).status_code == 404
    assert AuditLog.objects.filter(action="firebase.disconnected").exists()


def test_rotation_reencrypts_and_old_rows_still_decrypt(api, demo_account, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    crypto.reset_keys()
    connect(api, demo_account)
    stored = FirebaseConfig.objects.get().encrypted_credentials

    settings.FIELD_ENCRYPTION_KEYS = [new, old]  # new key first; the old one still decrypts
    crypto.reset_keys()
    assert service_account_of(FirebaseConfig.objects.get()) == service_account_of(
        FirebaseConfig.objects.get()
    )
    call_command("rotate_firebase_keys")
    assert "Rotated 1 credential(s); 0 already" in capsys.readouterr().out
    rotated = FirebaseConfig.objects.get().encrypted_credentials
    assert rotated != stored

    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key can now be retired
    crypto.reset_keys()
    assert (
        service_account_of(FirebaseConfig.objects.get())["client_email"]
        == demo_account["client_email"]
    )
    call_command("rotate_firebase_keys")
    assert "Rotated 0 credential(s); 1 already" in capsys.readouterr().out


def test_a_late_outcome_does_not_land_on_newer_credentials(api, fake_fcm, demo_account):
    from apps.integrations.firebase.client import FcmError
    from apps.integrations.firebase.services import _record_outcome

    connect(api, demo_account)
    checked = FirebaseConfig.objects.get()  # the credentials a slow check was made with
    replacement = fake_fcm.new_account("demo-project")
    assert connect(api, replacement).json()["status"] == "connected"
    _record_outcome(checked, error=FcmError("AUTH_FAILED", "refused"))
    current = FirebaseConfig.objects.get()
    assert current.status == "connected" and current.last_error == ""
    assert current.client_email == replacement["client_email"]
