"""The words of a one-time-code e-mail and SMS. Pure functions of an OtpMessage, no I/O."""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from fimum_ai.accounts.delivery.base import OtpMessage

PRODUCT = "Fimum AI"
PRIMARY = "#0066CC"
SMS_MAX_CHARS = 160  # one GSM-7 segment


def _minutes(message: OtpMessage) -> str:
    n = message.expires_in_min
    return f"{n} minute" if n == 1 else f"{n} minutes"


def email_subject(message: OtpMessage) -> str:
    # The code stays out of the subject: subjects end up in mail-server logs and lock-screen previews.
    return f"Your {PRODUCT} sign-in code"


def email_text(message: OtpMessage) -> str:
    lines = [
        f"Your {PRODUCT} sign-in code is:",
        "",
        f"    {message.code}",
        "",
        f"It expires in {_minutes(message)}.",
    ]
    if message.public_url:
        lines += ["", f"Enter it on the sign-in page: {message.public_url}"]
    lines += [
        "",
        "If you did not ask for this code, you can ignore this e-mail: nobody can sign in without it.",
        "",
        f"— {PRODUCT}",
    ]
    return "\n".join(lines) + "\n"


def email_html(message: OtpMessage) -> str:
    """Inline styles only: most mail clients drop <style> blocks."""
    code = escape(message.code)
    link = ""
    if message.public_url:
        url = escape(message.public_url, quote=True)
        link = (
            f'<p style="margin:0 0 16px">Enter it on the <a href="{url}" '
            f'style="color:{PRIMARY};text-decoration:underline">sign-in page</a>.</p>'
        )
    return f"""\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(email_subject(message))}</title></head>
<body style="margin:0;padding:0;background:#f4f6f8">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f6f8">
<tr><td align="center" style="padding:32px 16px">
<table role="presentation" cellpadding="0" cellspacing="0" style="max-width:480px;width:100%;\
background:#ffffff;border-radius:8px;font-family:Helvetica,Arial,sans-serif;color:#1f2933">
<tr><td style="background:{PRIMARY};color:#ffffff;padding:16px 24px;border-radius:8px 8px 0 0;\
font-size:18px;font-weight:bold">{escape(PRODUCT)}</td></tr>
<tr><td style="padding:24px;font-size:15px;line-height:1.5">
<p style="margin:0 0 16px">Your sign-in code is:</p>
<p style="margin:0 0 16px;font-size:32px;font-weight:bold;letter-spacing:6px;color:{PRIMARY};\
font-family:'Courier New',Courier,monospace">{code}</p>
<p style="margin:0 0 16px">It expires in {escape(_minutes(message))}.</p>
{link}<p style="margin:0;color:#52606d;font-size:13px">If you did not ask for this code, you can ignore \
this e-mail: nobody can sign in without it.</p>
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"""


def sms_text(message: OtpMessage) -> str:
    """One SMS segment. With a public URL, a last line `@host #code` lets phones offer to fill the code in
    on that site only (origin-bound one-time codes, WICG sms-one-time-codes)."""
    text = f"{message.code} is your {PRODUCT} code. It expires in {_minutes(message)}."
    host = urlsplit(message.public_url).hostname if message.public_url else None
    if host:
        bound = f"{text}\n\n@{host} #{message.code}"
        if len(bound) <= SMS_MAX_CHARS:
            return bound
    return text
