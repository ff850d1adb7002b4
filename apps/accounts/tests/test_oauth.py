"""Sign in with Google / Apple against a local key server with locally generated RSA keys."""

import base64
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from apps.accounts import oauth
from apps.accounts.models import SocialIdentity, User
from apps.workspaces.models import WorkspaceMember

GOOGLE_AUD, APPLE_AUD = "app.apps.googleusercontent.com", "com.example.app"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _self_signed(key) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class KeyServer:
    """Serves Google-style x509 certs and an Apple-style JWKS; counts fetches."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()
        self.documents = {
            "/google/certs": {"kid-1": _self_signed(self.key)},
            "/apple/keys": {
                "keys": [
                    {"kty": "RSA", "kid": "kid-1", "use": "sig", "alg": "RS256",
                     "n": _b64(numbers.n), "e": _b64(numbers.e)}
                ]
            },
        }  # fmt: skip
        self.fetches = {path: 0 for path in self.documents}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps(server.documents[self.path]).encode()
                server.fetches[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, claims: dict, key=None, kid="kid-1", algorithm="RS256") -> str:
        now = int(time.time())
        payload = {"iat": now, "exp": now + 600, **claims}
        return jwt.encode(payload, key or self.key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture(scope="module")
def keys():
    server = KeyServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture(autouse=True)
def providers(keys, settings):
    settings.GOOGLE_CLIENT_IDS = [GOOGLE_AUD]
    settings.GOOGLE_CERTS_URL = keys.url + "/google/certs"
    settings.APPLE_CLIENT_IDS = [APPLE_AUD]
    settings.APPLE_JWKS_URL = keys.url + "/apple/keys"
    oauth.google_certs.clear()
    oauth._apple_client = None


def google_claims(**overrides):
    return {"iss": "https://accounts.google.com", "aud": GOOGLE_AUD, "sub": "g-123",
            "email": "Sam@Example.com", "email_verified": True, "name": "Sam", **overrides}  # fmt: skip


def apple_claims(**overrides):
    return {"iss": "https://appleid.apple.com", "aud": APPLE_AUD, "sub": "a-456",
            "email": "sam@example.com", "email_verified": "true", **overrides}  # fmt: skip


@pytest.mark.django_db
def test_google_sign_in_creates_then_finds_the_user(client_for, keys):
    client = client_for()
    first = client.post("/api/v1/auth/oauth/google", {"id_token": keys.token(google_claims())})
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["created"] is True and set(body) == {"user", "created", "access", "refresh"}
    user = User.objects.get(email="sam@example.com")
    assert not user.has_usable_password() and user.name == "Sam"
    assert WorkspaceMember.objects.filter(user=user, role="owner").count() == 1

    again = client.post("/api/v1/auth/oauth/google/", {"id_token": keys.token(google_claims())})
    assert again.status_code == 200 and again.json()["created"] is False
    assert keys.fetches["/google/certs"] == 1  # certificates are cached


@pytest.mark.django_db
def test_apple_links_to_an_existing_account_by_verified_email(client_for, keys, make_user):
    existing = make_user(email="sam@example.com")
    response = client_for().post(
        "/api/v1/auth/oauth/apple", {"id_token": keys.token(apple_claims()), "name": "Sam A."}
    )
    assert response.status_code == 200 and response.json()["created"] is False
    assert response.json()["user"]["id"] == str(existing.pk)
    assert SocialIdentity.objects.get(provider="apple").user == existing
    # Later sign-ins find the user by Apple's subject, even if the relay email changes.
    relay = apple_claims(email="x1@privaterelay.appleid.com")
    later = client_for().post("/api/v1/auth/oauth/apple", {"id_token": keys.token(relay)})
    assert later.json()["user"]["id"] == str(existing.pk)
    assert keys.fetches["/apple/keys"] == 1  # the JWKS is cached


def expired(claims):
    return {**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}


def alg_none(claims):
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"kid-1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps({**claims, "exp": int(time.time()) + 600}).encode())
    return f"{header.decode()}.{body.rstrip(b'=').decode()}."


FAILURES = {
    "expired": lambda keys, claims: keys.token(expired(claims)),
    "wrong audience": lambda keys, claims: keys.token({**claims, "aud": "someone-else"}),
    "wrong issuer": lambda keys, claims: keys.token({**claims, "iss": "https://evil.example"}),
    "bad signature": lambda keys, claims: keys.token(claims, key=keys.other_key),
    "alg none": lambda keys, claims: alg_none(claims),
    "unverified email": lambda keys, claims: keys.token({**claims, "email_verified": False}),
    "garbage": lambda keys, claims: "not-a-token",
}


@pytest.mark.django_db
@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("provider", ["google", "apple"])
def test_every_invalid_token_is_401(client_for, keys, provider, failure):
    claims = google_claims() if provider == "google" else apple_claims()
    token = FAILURES[failure](keys, claims)
    response = client_for().post(f"/api/v1/auth/oauth/{provider}", {"id_token": token})
    assert response.status_code == 401, (provider, failure, response.content)
    assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert not User.objects.exists()


@pytest.mark.django_db
def test_unconfigured_provider_says_so(client_for, keys, settings):
    settings.GOOGLE_CLIENT_IDS = []
    response = client_for().post(
        "/api/v1/auth/oauth/google", {"id_token": keys.token(google_claims())}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "OAUTH_PROVIDER_NOT_CONFIGURED"
