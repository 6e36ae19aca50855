"""Turning form text into values: money in major units, optional numbers, notices."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from labelvault.errors import InvalidInput
from labelvault.workflow.reports import ZERO_DECIMAL_CURRENCIES


def parse_money(text: str | None, currency: str, field: str) -> int | None:
    """ "1.25" USD -> 125 minor units, exactly; empty -> None."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    digits = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{field}: {text!r} is not an amount", details={"field": field}) from None
    minor = value * (10**digits)
    if minor != minor.to_integral_value() or not value.is_finite():
        raise InvalidInput(f"{field}: at most {digits} decimals in {currency}", details={"field": field})
    return int(minor)


def minor_to_input(amount: int | None, currency: str) -> str:
    """The value a money input shows for ``amount`` minor units."""
    if amount is None:
        return ""
    digits = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return str(Decimal(amount).scaleb(-digits)) if digits else str(amount)


def minor_unit_step(currency: str) -> int:
    """The smallest axis step for money charts: a quarter of a major unit (25 cents, 1 yen)."""
    return 1 if currency in ZERO_DECIMAL_CURRENCIES else 25


def parse_int(text: str | None, field: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a whole number", details={"field": field}) from None


def parse_percent(text: str | None, field: str) -> float | None:
    """ "25" -> 0.25."""
    text = (text or "").strip().rstrip("%")
    if not text:
        return None
    try:
        return float(text) / 100
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a percentage", details={"field": field}) from None


# Notices after a form post are codes in the redirect, never text from the request.
NOTICES = {
    "saved": "Settings saved.",
    "client_created": "Client created, with its own encryption keys.",
    "class_created": "Conflict class created.",
    "client_added": "Client added to the conflict class.",
    "client_removed": "Client removed from the conflict class.",
    "user_created": "User created.",
    "password_changed": "Password changed. Your other sessions have ended.",
    "user_deactivated": "User deactivated: their password, tokens and sessions no longer work.",
    "user_reactivated": "User reactivated.",
    "role_granted": "Role granted.",
    "role_revoked": "Role revoked.",
    "offboarding_requested": "Offboarding request recorded in the audit log. An operator will contact you.",
}
