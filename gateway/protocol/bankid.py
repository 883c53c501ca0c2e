"""Swedish BankID UI material (pure layer): language choice, user messages, autostart links, QR frames.

Specs: protocols.md §3 (BankID behind Idura's ``acr_data``): §3.1 the animated-QR algorithm,
§3.2 hintCodes, §3.3 the hintCode -> RFA mapping; §2.3 the rendering obligations (autostart
URLs). Message texts are BankID's "Recommended user messages" (RFA1-RFA22), Swedish and English,
in the wording of the BankID RP guidelines v3.x.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Literal, get_args
from urllib.parse import quote, urlsplit

from gateway.protocol.poll import AUTO_START_TOKEN

__all__ = [
    "MESSAGES",
    "Lang",
    "Mode",
    "animated_qr_data",
    "autostart_urls",
    "choose_language",
    "message_id",
    "user_message",
]

Lang = Literal["sv", "en"]
Mode = Literal["qr", "autostart"]

_LANGS: frozenset[str] = frozenset(get_args(Lang))
_MODES: frozenset[str] = frozenset(get_args(Mode))

_SEARCHING_SV = (
    "Söker efter BankID, det kan ta en liten stund …\n"
    "Om det har gått några sekunder och inget BankID har hittats har du sannolikt inget BankID som går att "
    "använda för den aktuella identifieringen/underskriften i den här "
)
_SEARCHING_EN = (
    "Searching for BankID, it may take a little while …\n"
    "If a few seconds have passed and still no BankID has been found, you probably don't have a BankID "
    "which can be used for this identification/signing on this "
)
_CARD_SV = " Om du har ett BankID-kort, sätt in det i kortläsaren."
_CARD_EN = " If you have a BankID card, please insert it into your card reader."
_GET_ONE_SV = " Om du inte har något BankID kan du skaffa ett hos din bank."
_GET_ONE_EN = " If you don't have a BankID you can get one from your bank."
_OTHER_DEVICE_SV = " Om du har ett BankID på en annan enhet kan du starta din BankID-app där."
_OTHER_DEVICE_EN = " If you have a BankID on another device you can start the BankID app on that device."
_INSTALL_SV = " Installera appen från din appbutik eller https://install.bankid.com."
_INSTALL_EN = " Install the app from your app store or https://install.bankid.com."

#: Message id -> (Swedish, English). "complete" is the gateway's own; the rest are BankID's.
MESSAGES: Mapping[str, tuple[str, str]] = {
    "RFA1": ("Starta BankID-appen.", "Start your BankID app."),
    "RFA3": ("Åtgärden avbruten. Försök igen.", "Action cancelled. Please try again."),
    "RFA4": (
        "En identifiering eller underskrift för det här personnumret är redan påbörjad. Försök igen.",
        "An identification or signing for this personal number is already started. Please try again.",
    ),
    "RFA5": ("Internt tekniskt fel. Försök igen.", "Internal error. Please try again."),
    "RFA6": ("Åtgärden avbruten.", "Action cancelled."),
    "RFA8": (
        "BankID-appen svarar inte. Kontrollera att den är startad och att du har internetanslutning. "
        "Om du inte har något giltigt BankID kan du skaffa ett hos din bank. Försök sedan igen.",
        "The BankID app is not responding. Please check that it's started and that you have internet access. "
        "If you don't have a valid BankID you can get one from your bank. Try again.",
    ),
    "RFA9": (
        "Skriv in din säkerhetskod i BankID-appen och välj Identifiera eller Skriv under.",
        "Enter your security code in the BankID app and select Identify or Sign.",
    ),
    "RFA13": ("Försöker starta BankID-appen.", "Trying to start your BankID app."),
    # (A) is for a computer (card readers exist there), (B) for a phone or tablet. RFA14 adds
    # "another device" because the order is not tied to this device; RFA15 is for autostart.
    "RFA14A": (
        _SEARCHING_SV + "datorn." + _CARD_SV + _GET_ONE_SV + _OTHER_DEVICE_SV,
        _SEARCHING_EN + "computer." + _CARD_EN + _GET_ONE_EN + _OTHER_DEVICE_EN,
    ),
    "RFA14B": (
        _SEARCHING_SV + "enheten." + _GET_ONE_SV + _OTHER_DEVICE_SV,
        _SEARCHING_EN + "device." + _GET_ONE_EN + _OTHER_DEVICE_EN,
    ),
    "RFA15A": (
        _SEARCHING_SV + "datorn." + _CARD_SV + _GET_ONE_SV,
        _SEARCHING_EN + "computer." + _CARD_EN + _GET_ONE_EN,
    ),
    "RFA15B": (
        _SEARCHING_SV + "enheten." + _GET_ONE_SV,
        _SEARCHING_EN + "device." + _GET_ONE_EN,
    ),
    "RFA16": (
        "Det BankID du försöker använda är för gammalt eller spärrat. "
        "Använd ett annat BankID eller skaffa ett nytt hos din bank.",
        "The BankID you are trying to use is blocked or too old. "
        "Please use another BankID or get a new one from your bank.",
    ),
    # (A) the app did not start on this device (autostart), (B) the QR code was not scanned.
    "RFA17A": (
        "BankID-appen verkar inte finnas i din dator eller mobil. Installera den och skaffa ett BankID hos din bank."
        + _INSTALL_SV,
        "The BankID app couldn't be found on your computer or mobile device. "
        "Please install it and get a BankID from your bank." + _INSTALL_EN,
    ),
    "RFA17B": (
        "Misslyckades att läsa av QR-koden. Starta BankID-appen och läs av QR-koden. "
        "Kontrollera att BankID-appen är uppdaterad. "
        "Om du inte har BankID-appen måste du installera den och skaffa ett BankID hos din bank." + _INSTALL_SV,
        "Failed to scan the QR code. Start the BankID app and scan the QR code. "
        "Check that the BankID app is up to date. "
        "If you don't have the BankID app, you need to install it and get a BankID from your bank." + _INSTALL_EN,
    ),
    "RFA21": ("Identifiering eller underskrift pågår.", "Identification or signing in progress."),
    "RFA22": ("Okänt fel. Försök igen.", "Unknown error. Please try again."),
    "complete": ("Identifierad. Fortsätter…", "Identified. Continuing…"),
}

# protocols.md §3.3, terminal rows. Keys are BankID failed hintCodes / errorCodes and the
# gateway's own PollTransaction reasons; anything missing falls back to RFA22.
_TERMINAL_MESSAGES: Mapping[str, str] = {
    "access_denied": "RFA6",
    "userCancel": "RFA6",
    # BankID's hintCode "cancelled" (a newer order replaced this one) and the user's cancel in
    # the gateway's own UI both ask the user to try again.
    "cancelled": "RFA3",
    "expired": "RFA8",
    "expired_token": "RFA8",
    "expiredTransaction": "RFA8",
    "certificateErr": "RFA16",
    "startFailed": "RFA17",
    "alreadyInProgress": "RFA4",
    "idp_unavailable": "RFA5",
    "internal": "RFA5",
    "internalError": "RFA5",
    "maintenance": "RFA5",
}

# Accept-Language is client input: parse a bounded prefix only.
_MAX_ACCEPT_LANGUAGE_CHARS = 4096
_MAX_ACCEPT_LANGUAGE_ENTRIES = 64
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?", re.ASCII)
_MAX_QR_SECONDS = 999_999  # QR_DATA allows at most six digits for the time segment


def choose_language(ui_locales: Sequence[str], accept_language: str | None) -> Lang:
    """The UI language: the first Swedish or English tag in ``ui_locales``, else the
    Accept-Language header in q-value order (RFC 9110 §12.5.4), else Swedish.

    Only the primary subtag counts, so "sv-SE", "SV" and "en-GB" all match (protocols.md §1.2:
    SE BankID offers ``sv`` and ``en``, default from Accept-Language).
    """
    tags = ui_locales.split() if isinstance(ui_locales, str) else ui_locales
    for tag in tags:
        lang = _primary_language(tag)
        if lang is not None:
            return lang
    if accept_language:
        for tag in _accept_language_order(accept_language):
            lang = _primary_language(tag)
            if lang is not None:
                return lang
    return "sv"


def message_id(*, status: str, hint_code: str | None, reason: str, mode: Mode, computer: bool = False) -> str:
    """Which recommended message applies (protocols.md §3.3): "RFA1" ... "RFA22" or "complete".

    ``status`` is a PollTransaction status. Pending: outstandingTransaction (or no hint yet)
    -> RFA13 when autostarting, RFA1 for QR; noClient -> RFA1; started -> RFA15 when
    autostarting, RFA14 for QR, variant A on a computer and B elsewhere; userSign -> RFA9;
    anything else (userMrtd, userCallConfirm, unknown) -> RFA21. Ended: the user's cancel in
    our UI -> RFA3; otherwise a failed hintCode, then ``reason``, is looked up (userCancel /
    access_denied -> RFA6, expiry -> RFA8, certificateErr -> RFA16, startFailed -> RFA17A/B,
    alreadyInProgress -> RFA4, idp_unavailable / internal -> RFA5), falling back to RFA22.
    """
    if mode not in _MODES:
        raise ValueError("mode must be 'qr' or 'autostart'")
    autostart = mode == "autostart"
    if status == "complete":
        return "complete"
    if status == "pending":
        if hint_code is None or hint_code == "outstandingTransaction":
            return "RFA13" if autostart else "RFA1"
        if hint_code == "noClient":
            return "RFA1"
        if hint_code == "started":
            return ("RFA15" if autostart else "RFA14") + ("A" if computer else "B")
        if hint_code == "userSign":
            return "RFA9"
        return "RFA21"
    if status == "cancelled":
        return "RFA3"
    if status not in ("failed", "expired"):
        raise ValueError("status must be a PollTransaction status")
    # The final hintCode names what went wrong at BankID, which beats the generic OAuth error.
    found = _TERMINAL_MESSAGES.get(hint_code or "") or _TERMINAL_MESSAGES.get(reason) or "RFA22"
    if found == "RFA17":
        return "RFA17A" if autostart else "RFA17B"
    return found


def user_message(
    *, status: str, hint_code: str | None, reason: str, mode: Mode, lang: Lang, computer: bool = False
) -> str:
    """The text to show for a transaction's state, in ``lang`` (see :func:`message_id`)."""
    if lang not in _LANGS:
        raise ValueError("lang must be 'sv' or 'en'")
    swedish, english = MESSAGES[
        message_id(status=status, hint_code=hint_code, reason=reason, mode=mode, computer=computer)
    ]
    return swedish if lang == "sv" else english


def autostart_urls(auto_start_token: str, *, redirect: str | None = None) -> tuple[str, str]:
    """The two ways to launch the BankID app on this device (protocols.md §2.3).

    Returns the custom-scheme link ``bankid:///?autostarttoken=T&redirect=null`` and the
    universal link ``https://app.bankid.com/?autostarttoken=T&redirect=R``, where R is the
    URL-encoded ``redirect`` (iOS returns there) or ``null``. Android should use ``null``, so
    the custom-scheme link never carries a redirect. ``redirect`` must be an absolute http(s)
    URL: the BankID app opens it, so nothing else may be smuggled in.
    """
    if not isinstance(auto_start_token, str) or not AUTO_START_TOKEN.fullmatch(auto_start_token):
        raise ValueError("auto_start_token is not a BankID autostart token")
    target = "null"
    if redirect is not None:
        if not _is_web_url(redirect):
            raise ValueError("redirect must be an absolute http(s) URL without spaces or control characters")
        target = quote(redirect, safe="")
    return (
        f"bankid:///?autostarttoken={auto_start_token}&redirect=null",
        f"https://app.bankid.com/?autostarttoken={auto_start_token}&redirect={target}",
    )


def animated_qr_data(qr_start_token: str, qr_start_secret: str, seconds: int) -> str:
    """One frame of BankID's animated QR code (protocols.md §3.1).

    ``"bankid." + qrStartToken + "." + t + "." + hex(HMAC-SHA256(key=qrStartSecret, msg=t))``
    with ``t`` the whole seconds since the order was created. Idura does not hand out the
    secret, so the gateway only needs this to play BankID in tests and the mock IdP.
    """
    if not isinstance(qr_start_token, str) or not AUTO_START_TOKEN.fullmatch(qr_start_token):
        raise ValueError("qr_start_token must be a lower-case UUID")
    if not isinstance(qr_start_secret, str) or not qr_start_secret:
        raise ValueError("qr_start_secret must be a non-empty string")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= _MAX_QR_SECONDS:
        raise ValueError("seconds must be an int from 0 to 999999")
    time = str(seconds)
    digest = hmac.new(qr_start_secret.encode("utf-8"), time.encode("ascii"), hashlib.sha256).hexdigest()
    return f"bankid.{qr_start_token}.{time}.{digest}"


def _primary_language(tag: object) -> Lang | None:
    if not isinstance(tag, str):
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if primary == "sv":
        return "sv"
    if primary == "en":
        return "en"
    return None


def _accept_language_order(header: str) -> list[str]:
    """Language ranges from most to least preferred; q=0 and malformed entries are dropped."""
    weighted: list[tuple[float, int, str]] = []
    entries = header[:_MAX_ACCEPT_LANGUAGE_CHARS].split(",")[:_MAX_ACCEPT_LANGUAGE_ENTRIES]
    for position, entry in enumerate(entries):
        language, *params = (part.strip() for part in entry.split(";"))
        if not language or language == "*":
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                quality = _quality(value.strip())
        if quality > 0:
            weighted.append((-quality, position, language))
    weighted.sort()
    return [language for _, _, language in weighted]


def _quality(value: str) -> float:
    """RFC 9110 §12.4.2 qvalue ("0" to "1" with up to three decimals); -1 when malformed."""
    if not _QVALUE.fullmatch(value):
        return -1.0
    return float(value)


def _is_web_url(value: object) -> bool:
    if not isinstance(value, str) or not value.isascii():
        return False
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
