"""Development channel: the code goes to the server's stdout, where the person running it can read it.

Deliberately not `logging`: log lines are collected and shipped, and codes must never be in them.
"""

from __future__ import annotations

import sys

from fimum_ai.accounts.delivery.base import OtpMessage


class ConsoleChannel:
    name = "console"

    async def send(self, message: OtpMessage) -> None:
        rule = "=" * 72
        print(
            f"{rule}\n"
            "[fimum] DEVELOPMENT ONLY — no mail/SMS server configured.\n"
            f"[fimum] One-time code for {message.masked_recipient} ({message.channel}): {message.code} "
            f"(expires in {message.expires_in_min} min)\n"
            f"{rule}",
            file=sys.stdout,
            flush=True,
        )

    async def aclose(self) -> None:
        return None
