"""Swedish BankID UI material: protocols.md §3.1 (QR vector), §3.3 (RFA mapping), §2.3 (autostart URLs)."""

from __future__ import annotations

import pytest

from gateway.protocol.bankid import (
    MESSAGES,
    animated_qr_data,
    autostart_urls,
    choose_language,
    message_id,
    user_message,
)
from gateway.protocol.poll import QR_DATA

QR_TOKEN = "67df3917-fa0d-44e5-b327-edcc928297f8"
QR_SECRET = "d28db9a7-4cde-429e-a983-359be676944c"
AUTO = "d2c96ea2-f8d9-4e9f-8d39-4f2e88e10e1c"

# --- animated QR ----------------------------------------------------------------------------------


def test_qr_test_vector():
    assert animated_qr_data(QR_TOKEN, QR_SECRET, 0) == (
        "bankid.67df3917-fa0d-44e5-b327-edcc928297f8.0.dc69358e712458a66a7525beef148ae8526b1c71610eff2c16cdffb4cdac9bf8"
    )
    assert animated_qr_data(QR_TOKEN, QR_SECRET, 1) == (
        "bankid.67df3917-fa0d-44e5-b327-edcc928297f8.1.949d559bf23403952a94d103e67743126381eda00f0b3cbddbf7c96b1adcbce2"
    )


@pytest.mark.parametrize("seconds", [0, 1, 29, 999_999])
def test_qr_frames_pass_the_gateway_sanity_check(seconds):
    assert QR_DATA.fullmatch(animated_qr_data(QR_TOKEN, QR_SECRET, seconds))


@pytest.mark.parametrize(
    ("token", "secret", "seconds"),
    [
        (QR_TOKEN, QR_SECRET, -1),
        (QR_TOKEN, QR_SECRET, 1_000_000),
        (QR_TOKEN, QR_SECRET, True),
        (QR_TOKEN, QR_SECRET, 1.0),
        (QR_TOKEN, "", 0),
        (QR_TOKEN.upper(), QR_SECRET, 0),
        ("not-a-uuid", QR_SECRET, 0),
        (QR_TOKEN + "\n", QR_SECRET, 0),
    ],
)
def test_qr_refuses_bad_input(token, secret, seconds):
    with pytest.raises(ValueError):
        animated_qr_data(token, secret, seconds)


# --- autostart ------------------------------------------------------------------------------------


def test_autostart_urls_without_redirect():
    assert autostart_urls(AUTO) == (
        "bankid:///?autostarttoken=d2c96ea2-f8d9-4e9f-8d39-4f2e88e10e1c&redirect=null",
        "https://app.bankid.com/?autostarttoken=d2c96ea2-f8d9-4e9f-8d39-4f2e88e10e1c&redirect=null",
    )


def test_autostart_redirect_is_fully_encoded():
    _, universal = autostart_urls(AUTO, redirect="https://gw.example.test/auth/se/status?x=1&y=2#top")
    assert universal == (
        "https://app.bankid.com/?autostarttoken=d2c96ea2-f8d9-4e9f-8d39-4f2e88e10e1c"
        "&redirect=https%3A%2F%2Fgw.example.test%2Fauth%2Fse%2Fstatus%3Fx%3D1%26y%3D2%23top"
    )


@pytest.mark.parametrize(
    "token",
    ["", AUTO.upper(), AUTO + "\n", "{" + AUTO + "}", AUTO[:-1], AUTO + "&redirect=https://evil.example", None, 42],
)
def test_autostart_refuses_bad_tokens(token):
    with pytest.raises(ValueError):
        autostart_urls(token)


@pytest.mark.parametrize(
    "redirect",
    [
        "javascript:alert(1)",
        "bankid:///?autostarttoken=x",
        "/relative/path",
        "//gw.example.test/x",
        "https://",
        "https://gw.example.test/a b",
        "https://gw.example.test/\r\nx",
        "https://gw.exämple.test/",
        "",
    ],
)
def test_autostart_refuses_bad_redirects(redirect):
    with pytest.raises(ValueError):
        autostart_urls(AUTO, redirect=redirect)


# --- messages -------------------------------------------------------------------------------------

PENDING = [
    ("outstandingTransaction", "qr", False, "RFA1"),
    ("outstandingTransaction", "autostart", False, "RFA13"),
    (None, "qr", False, "RFA1"),
    (None, "autostart", False, "RFA13"),
    ("noClient", "qr", False, "RFA1"),
    ("noClient", "autostart", False, "RFA1"),
    ("started", "qr", True, "RFA14A"),
    ("started", "qr", False, "RFA14B"),
    ("started", "autostart", True, "RFA15A"),
    ("started", "autostart", False, "RFA15B"),
    ("userSign", "qr", False, "RFA9"),
    ("userSign", "autostart", False, "RFA9"),
    ("userMrtd", "qr", False, "RFA21"),
    ("userCallConfirm", "autostart", False, "RFA21"),
    ("someFutureHint", "qr", False, "RFA21"),
]


@pytest.mark.parametrize(("hint", "mode", "computer", "expected"), PENDING)
def test_pending_hints(hint, mode, computer, expected):
    assert message_id(status="pending", hint_code=hint, reason="", mode=mode, computer=computer) == expected
    for lang, index in (("sv", 0), ("en", 1)):
        text = user_message(status="pending", hint_code=hint, reason="", mode=mode, lang=lang, computer=computer)
        assert text == MESSAGES[expected][index]


TERMINAL = [
    # (status, hint_code, reason, mode, expected)
    ("failed", None, "access_denied", "qr", "RFA6"),
    ("failed", "userCancel", "access_denied", "qr", "RFA6"),
    ("failed", "userCancel", "idp_error", "autostart", "RFA6"),
    ("cancelled", None, "cancelled", "qr", "RFA3"),
    ("cancelled", "userSign", "cancelled", "autostart", "RFA3"),
    ("failed", "cancelled", "access_denied", "qr", "RFA3"),
    ("expired", None, "expired", "qr", "RFA8"),
    ("expired", "userSign", "expired_token", "autostart", "RFA8"),
    ("failed", "expiredTransaction", "access_denied", "qr", "RFA8"),
    ("failed", "certificateErr", "access_denied", "qr", "RFA16"),
    ("failed", "startFailed", "access_denied", "autostart", "RFA17A"),
    ("failed", "startFailed", "access_denied", "qr", "RFA17B"),
    ("failed", None, "startFailed", "qr", "RFA17B"),
    ("failed", None, "alreadyInProgress", "qr", "RFA4"),
    ("failed", None, "idp_unavailable", "qr", "RFA5"),
    ("failed", None, "internal", "autostart", "RFA5"),
    ("failed", None, "internalError", "autostart", "RFA5"),
    ("failed", None, "maintenance", "qr", "RFA5"),
    ("failed", "userDeclinedCall", "access_denied", "qr", "RFA6"),
    ("failed", "notSupportedByUserApp", "idp_error", "qr", "RFA22"),
    ("failed", "transactionRiskBlocked", "idp_error", "qr", "RFA22"),
    ("failed", "started", "invalid_grant", "qr", "RFA22"),
    ("failed", None, "invalid_client", "qr", "RFA22"),
    ("failed", None, "malformed_response", "qr", "RFA22"),
    ("failed", None, "token_invalid", "autostart", "RFA22"),
    ("failed", None, "start_failed", "qr", "RFA22"),
    ("complete", "userSign", "", "qr", "complete"),
    ("complete", None, "", "autostart", "complete"),
]


@pytest.mark.parametrize(("status", "hint", "reason", "mode", "expected"), TERMINAL)
def test_ended_transactions(status, hint, reason, mode, expected):
    assert message_id(status=status, hint_code=hint, reason=reason, mode=mode) == expected
    assert user_message(status=status, hint_code=hint, reason=reason, mode=mode, lang="sv") == MESSAGES[expected][0]
    assert user_message(status=status, hint_code=hint, reason=reason, mode=mode, lang="en") == MESSAGES[expected][1]


def test_every_message_is_reachable():
    reached = {row[3] for row in PENDING} | {row[4] for row in TERMINAL}
    assert reached == set(MESSAGES)


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_messages_exist_in_both_languages(key):
    swedish, english = MESSAGES[key]
    assert swedish and english and swedish != english
    for text in (swedish, english):
        assert text == text.strip()
        assert all(char == "\n" or char.isprintable() for char in text)


def test_official_texts():
    assert MESSAGES["RFA1"] == ("Starta BankID-appen.", "Start your BankID app.")
    assert MESSAGES["RFA3"] == ("Åtgärden avbruten. Försök igen.", "Action cancelled. Please try again.")
    assert MESSAGES["RFA5"] == ("Internt tekniskt fel. Försök igen.", "Internal error. Please try again.")
    assert MESSAGES["RFA6"] == ("Åtgärden avbruten.", "Action cancelled.")
    assert MESSAGES["RFA9"] == (
        "Skriv in din säkerhetskod i BankID-appen och välj Identifiera eller Skriv under.",
        "Enter your security code in the BankID app and select Identify or Sign.",
    )
    assert MESSAGES["RFA13"] == ("Försöker starta BankID-appen.", "Trying to start your BankID app.")
    assert MESSAGES["RFA21"] == ("Identifiering eller underskrift pågår.", "Identification or signing in progress.")
    assert MESSAGES["RFA22"] == ("Okänt fel. Försök igen.", "Unknown error. Please try again.")
    assert MESSAGES["RFA15B"][0] == (
        "Söker efter BankID, det kan ta en liten stund …\n"
        "Om det har gått några sekunder och inget BankID har hittats har du sannolikt inget BankID som går att "
        "använda för den aktuella identifieringen/underskriften i den här enheten. "
        "Om du inte har något BankID kan du skaffa ett hos din bank."
    )
    assert MESSAGES["RFA14A"][1].endswith(
        "on this computer. If you have a BankID card, please insert it into your card reader. "
        "If you don't have a BankID you can get one from your bank. "
        "If you have a BankID on another device you can start the BankID app on that device."
    )
    assert MESSAGES["complete"] == ("Identifierad. Fortsätter…", "Identified. Continuing…")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "pending", "mode": "sms", "lang": "sv"},
        {"status": "pending", "mode": "qr", "lang": "de"},
        {"status": "unknown", "mode": "qr", "lang": "sv"},
    ],
)
def test_user_message_refuses_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        user_message(hint_code=None, reason="", **kwargs)


# --- language -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ui_locales", "accept_language", "expected"),
    [
        ([], None, "sv"),
        ([], "", "sv"),
        (["en"], None, "en"),
        (["sv"], "en", "sv"),
        (["sv-SE"], "en", "sv"),
        (["EN-us"], "sv", "en"),
        (["en_GB"], None, "en"),
        (["de-DE", "en-US", "sv"], "sv", "en"),
        (["nb", "da"], "en-GB,en;q=0.9", "en"),
        (["nb"], None, "sv"),
        ("de en sv", None, "en"),
        ([], "en-US,en;q=0.9,sv;q=0.8", "en"),
        ([], "de-DE, sv;q=0.5, en;q=0.7", "en"),
        ([], "sv;q=0.5, en", "en"),
        ([], "sv;q=0, en;q=0.1", "en"),
        ([], "en;q=0, sv;q=0.1", "sv"),
        ([], "sv-FI;q=0.9, en;q=0.9", "sv"),
        ([], "en;q=0.9, sv-FI;q=0.9", "en"),
        ([], "fi, de;q=0.9", "sv"),
        ([], "*", "sv"),
        ([], "*;q=1, en;q=0.1", "en"),
        ([], "en;q=abc, sv;q=0.2", "sv"),
        ([], "en;q=1.5, sv;q=0.1", "sv"),
        ([], "en;q=0.0001, sv;q=0.1", "sv"),
        ([], "en;q=\u0661, sv;q=0.1", "sv"),
        ([], "en; Q=0.3, sv ; q=0.2", "en"),
        ([], "english, svenska", "sv"),
        ([], ",,;;,en", "en"),
        ([], "x" * 5000 + ",en", "sv"),
        ([], ",".join(["fi"] * 70 + ["en"]), "sv"),
    ],
)
def test_language_choice(ui_locales, accept_language, expected):
    assert choose_language(ui_locales, accept_language) == expected
