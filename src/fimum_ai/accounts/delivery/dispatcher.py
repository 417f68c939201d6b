"""Background delivery: `enqueue` returns at once; workers send, retry with backoff, log and count.

E-mail and SMS have their own queue and workers, so a slow mail server never holds up an SMS.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from prometheus_client import Counter

from fimum_ai.accounts.delivery.base import Channel, DeliveryError, OtpMessage
from fimum_ai.accounts.delivery.console import ConsoleChannel
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)

# Module level: registered once per process however many dispatchers are built (tests build many).
DELIVERIES = Counter(
    "fimum_otp_deliveries",
    "One-time-code delivery attempts by channel and outcome (sent, retry, failed).",
    ["channel", "outcome"],
)


@dataclass
class _Job:
    message: OtpMessage
    attempt: int = 1


class Dispatcher:
    def __init__(
        self,
        email: Channel,
        sms: Channel,
        *,
        attempts: int = 4,
        backoff_s: float = 1.0,
        workers: int = 4,
        max_queue: int = 1000,
    ) -> None:
        if attempts < 1 or workers < 1:
            raise ValueError("attempts and workers must be at least 1")
        self.channels: dict[str, Channel] = {"email": email, "sms": sms}
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.workers = workers
        self.max_queue = max_queue
        self._queues: dict[str, asyncio.Queue[_Job]] = {kind: asyncio.Queue() for kind in self.channels}
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._pending = 0  # accepted and not yet sent or given up on, retries waiting included
        self._idle = asyncio.Event()
        self._idle.set()
        self._accepting = True
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        if self._tasks:
            return
        self._accepting = True
        self._loop = asyncio.get_running_loop()
        for kind, queue in self._queues.items():
            for i in range(self.workers):
                self._tasks.append(asyncio.create_task(self._work(queue), name=f"otp-{kind}-{i}"))

    def enqueue(self, message: OtpMessage) -> None:
        """Queue a message for delivery and return at once. Raises DeliveryError when stopping or
        overloaded. Safe from another thread too (e.g. a sync route): it is handed to the loop."""
        if not self._accepting:
            raise DeliveryError("one-time-code delivery is shutting down")
        if self._pending >= self.max_queue:
            raise DeliveryError("too many one-time codes waiting for delivery")
        if self._loop is not None and _running_loop() is not self._loop:
            self._loop.call_soon_threadsafe(self._accept, message)
        else:
            self._accept(message)

    def _accept(self, message: OtpMessage) -> None:
        self._pending += 1
        self._idle.clear()
        self._queues[message.channel].put_nowait(_Job(message))

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Until every queued message was sent or given up on (TimeoutError otherwise)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let queued messages go out for up to `timeout` seconds, close the channels."""
        self._accepting = False
        try:
            await self.wait_idle(timeout)
        except TimeoutError:
            log.warning("otp delivery stopped with messages undelivered", extra={"pending": self._pending})
        tasks = [*self._tasks, *self._retries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._retries.clear()
        closed: set[int] = set()
        for channel in self.channels.values():
            if id(channel) not in closed:
                closed.add(id(channel))
                try:
                    await channel.aclose()
                except Exception:
                    log.exception("closing a delivery channel failed", extra={"channel": channel.name})

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._attempt(job)
            finally:
                queue.task_done()

    async def _attempt(self, job: _Job) -> None:
        message = job.message
        channel = self.channels[message.channel]
        fields = {
            "channel": channel.name,
            "otp_channel": message.channel,
            "recipient": message.masked_recipient,
            "attempt": job.attempt,
        }
        try:
            await channel.send(message)
        except DeliveryError as exc:
            error: Exception = exc
            permanent = exc.permanent
        except Exception as exc:  # a channel bug: logged with its traceback, retried like a network error
            log.exception("otp delivery raised unexpectedly", extra=fields)
            error, permanent = exc, False
        else:
            DELIVERIES.labels(channel.name, "sent").inc()
            log.info("otp delivered", extra=fields)
            self._done()
            return
        fields |= {"error": type(error).__name__, "reason": _reason(error), "permanent": permanent}
        if permanent or job.attempt >= self.attempts:
            DELIVERIES.labels(channel.name, "failed").inc()
            log.error("otp delivery failed", extra=fields)
            self._done()
            return
        delay = self.backoff_s * 2 ** (job.attempt - 1) * random.uniform(0.9, 1.1)
        DELIVERIES.labels(channel.name, "retry").inc()
        log.warning("otp delivery will be retried", extra=fields | {"retry_in_s": round(delay, 3)})
        task = asyncio.create_task(self._retry_later(_Job(message, job.attempt + 1), delay))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry_later(self, job: _Job, delay: float) -> None:
        # Waiting here rather than in a worker keeps the workers free for other messages.
        await asyncio.sleep(delay)
        self._queues[job.message.channel].put_nowait(job)

    def _done(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._idle.set()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _reason(error: Exception) -> str:
    # DeliveryError texts are ours and never quote the message; other exceptions are named, not quoted.
    return str(error) if isinstance(error, DeliveryError) else type(error).__name__


def build_email_channel(settings: Settings) -> Channel:
    if settings.smtp_host:
        from fimum_ai.accounts.delivery.email import SmtpChannel

        return SmtpChannel.from_settings(settings)
    return ConsoleChannel()


def build_sms_channel(settings: Settings) -> Channel:
    if settings.smpp_host:
        from fimum_ai.accounts.delivery.smpp import SmppChannel

        return SmppChannel.from_settings(settings)
    if settings.modem_device:
        from fimum_ai.accounts.delivery.modem import ModemChannel

        return ModemChannel.from_settings(settings)
    return ConsoleChannel()


def build_dispatcher(settings: Settings) -> Dispatcher:
    """SMTP for e-mail when smtp_host is set; SMPP, else a GSM modem, for SMS; else the console."""
    email, sms = build_email_channel(settings), build_sms_channel(settings)
    for kind, channel in (("email", email), ("sms", sms)):
        if channel.name == "console":
            log.warning(
                "no server configured for one-time codes: they are printed on stdout (development only)",
                extra={"otp_channel": kind, "mode": settings.mode},
            )
    auth = settings.auth
    return Dispatcher(email, sms, attempts=auth.delivery_attempts, backoff_s=auth.delivery_backoff_s)
