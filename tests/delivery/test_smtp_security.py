"""TLS (STARTTLS and implicit) with certificate checks, and AUTH only once TLS is up."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import SendingSettings, SmtpSettings
from newsletter.delivery.transports import SmtpTransport, TransportError, make_transport
from newsletter.errors import ConfigError

from .conftest import PASSWORD, USERNAME, envelope
from .test_smtp_transport import send_all

ENVELOPES = [envelope(1), envelope(2), envelope(3)]


def refused(server, **settings) -> TransportError:
    """Send ENVELOPES and return the TransportError that must stop the batch."""
    with pytest.raises(TransportError) as caught:
        send_all(SmtpTransport(server.settings(**settings)), ENVELOPES)
    error = caught.value
    assert sorted(r.key for r in error.results) == [1, 2, 3]
    assert {r.outcome for r in error.results} == {"deferred"}
    assert all(r.text == str(error) for r in error.results)
    assert not server.handler.messages
    return error


@pytest.mark.parametrize(("mode", "security"), [("starttls", "starttls"), ("implicit", "tls")])
def test_untrusted_certificate_is_refused(smtp_server, mode, security):
    server = smtp_server(tls=mode)

    error = refused(server, security=security)

    assert "certificate" in str(error) and "not trusted" in str(error)
    assert not [v for s in server.handler.used_sessions() for v in s.verbs() if v == "MAIL"]


@pytest.mark.parametrize(("mode", "security"), [("starttls", "starttls"), ("implicit", "tls")])
@pytest.mark.parametrize("trust", ["ca_file", "no_verification"])
def test_tls_works_with_the_ca_or_without_verification(
    smtp_server, tls_files, mode, security, trust
):
    server = smtp_server(tls=mode)
    if trust == "ca_file":
        settings = server.settings(security=security, ca_file=str(tls_files.ca))
    else:
        settings = server.settings(security=security, verify_certificates=False)

    (results,) = send_all(SmtpTransport(settings), ENVELOPES)

    assert {r.outcome for r in results} == {"sent"}
    assert len(server.handler.messages) == 3
    for session in server.handler.used_sessions():
        verbs = session.verbs()
        if mode == "starttls":
            assert verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
        else:
            assert verbs.count("EHLO") == 1 and "STARTTLS" not in verbs


def test_starttls_missing_is_never_a_fallback_to_plain_text(smtp_server):
    server = smtp_server()  # offers no STARTTLS

    error = refused(server, security="starttls")

    assert "does not offer STARTTLS" in str(error)
    for session in server.handler.used_sessions():
        assert session.verbs() == ["EHLO"]


def test_auth_comes_after_starttls(smtp_server, tls_files):
    server = smtp_server(tls="starttls", auth=True)
    settings = server.settings(
        security="starttls", ca_file=str(tls_files.ca), username=USERNAME, password=PASSWORD
    )

    (results,) = send_all(SmtpTransport(settings, ehlo_name="client.example.org"), ENVELOPES)

    assert {r.outcome for r in results} == {"sent"}
    for session in server.handler.used_sessions():
        verbs = session.verbs()
        assert verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
        assert verbs.count("AUTH") == 1
        assert not any(b"AUTH" in chunk for chunk in session.chunks[: verbs.index("STARTTLS")])


def test_auth_login_when_plain_is_not_offered(smtp_server, tls_files):
    server = smtp_server(tls="starttls", auth=True, auth_exclude_mechanism=["PLAIN"])
    settings = server.settings(
        security="starttls", ca_file=str(tls_files.ca), username=USERNAME, password=PASSWORD
    )

    (results,) = send_all(SmtpTransport(settings), ENVELOPES)

    assert {r.outcome for r in results} == {"sent"}
    commands = server.handler.used_sessions()[0].commands
    assert ("AUTH", "LOGIN") in commands


def test_wrong_password_is_reported_for_every_envelope(smtp_server, tls_files):
    server = smtp_server(tls="starttls", auth=True)

    error = refused(
        server,
        security="starttls",
        ca_file=str(tls_files.ca),
        username=USERNAME,
        password="wrong",
    )

    assert "authentication as 'user' failed" in str(error)
    assert "535" in str(error)
    assert "wrong" not in str(error)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_plain_text_auth_only_to_this_machine(smtp_server):
    server = smtp_server(auth=True, auth_require_tls=False)
    settings = server.settings(username=USERNAME, password=PASSWORD)  # security "none"

    (results,) = send_all(SmtpTransport(settings), ENVELOPES)
    assert {r.outcome for r in results} == {"sent"}

    remote = SmtpSettings(host="smtp.example.com", username=USERNAME, password=PASSWORD)
    with pytest.raises(ConfigError, match="plain text"):
        SmtpTransport(remote)


def test_make_transport_resolves_ca_file_against_the_config_directory(smtp_server, tls_files):
    server = smtp_server(tls="starttls")
    smtp = server.settings(security="starttls", ca_file=tls_files.ca.name)

    transport = make_transport(smtp, SendingSettings(), base_dir=tls_files.ca.parent)
    (results,) = send_all(transport, ENVELOPES)

    assert {r.outcome for r in results} == {"sent"}
    with pytest.raises(ConfigError, match=r"smtp\.ca_file"):
        make_transport(smtp, SendingSettings(), base_dir=Path("/nonexistent"))
