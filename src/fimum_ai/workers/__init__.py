"""Distributed image workers (Celery)."""
