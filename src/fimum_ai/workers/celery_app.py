"""The Celery configuration shared by workers and API replicas (which only send tasks)."""

from __future__ import annotations

from celery import Celery

from fimum_ai.settings import Settings


def make_celery(settings: Settings) -> Celery:
    url = settings.redis_url or "redis://127.0.0.1:6379/0"
    celery = Celery("fimum", broker=url, backend=url)
    celery.conf.update(
        task_acks_late=True,  # a task is acknowledged when done: a dead worker's task is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # one task at a time per process: a GPU runs one job
        task_default_queue=f"{settings.redis_prefix}images",
        broker_transport_options={"global_keyprefix": settings.redis_prefix, "visibility_timeout": 3600},
        result_backend_transport_options={"global_keyprefix": settings.redis_prefix},
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return celery
