"""One-time-code delivery: e-mail (SMTP), SMS (SMPP or a GSM modem), or the console in development.

dispatcher = build_dispatcher(settings)
await dispatcher.start()
dispatcher.enqueue(OtpMessage("email", "ada@example.com", "123456", expires_in_s=600))
await dispatcher.stop()
"""

from fimum_ai.accounts.delivery.base import Channel, DeliveryError, OtpMessage
from fimum_ai.accounts.delivery.dispatcher import Dispatcher, build_dispatcher

__all__ = ["Channel", "DeliveryError", "Dispatcher", "OtpMessage", "build_dispatcher"]
