"""The BankID app's side of the animated QR code (protocols.md §3.1): read and check a scanned frame.

Frames are made by gateway.protocol.bankid.animated_qr_data (re-exported here for the dev IdP);
a scanned frame is genuine when it equals the frame the order's secret gives for its time.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from gateway.protocol.bankid import animated_qr_data

__all__ = ["QR_DATA_PATTERN", "QrFrame", "animated_qr_data", "frame_matches", "parse_qr_data"]

QR_DATA_PATTERN = re.compile(r"^bankid\.([0-9a-f-]{36})\.(\d{1,6})\.([0-9a-f]{64})\Z")


@dataclass(frozen=True, slots=True)
class QrFrame:
    value: str
    qr_start_token: str
    seconds: int


def parse_qr_data(value: str) -> QrFrame | None:
    match = QR_DATA_PATTERN.match(value)
    if match is None:
        return None
    return QrFrame(value, match.group(1), int(match.group(2)))


def frame_matches(frame: QrFrame, qr_start_secret: str) -> bool:
    try:
        expected = animated_qr_data(frame.qr_start_token, qr_start_secret, frame.seconds)
    except ValueError:  # not a UUID token, or a time out of range
        return False
    return hmac.compare_digest(frame.value, expected)
