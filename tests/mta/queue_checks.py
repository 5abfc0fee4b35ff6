"""The queue probe run once against a lab's real queue, its gauges read back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.metrics import ExporterMetrics
from exporter.queue_probe import QueueConfig, QueueProbe


@dataclass
class Probed:
    success: float
    messages: dict[str, float]  # queue -> smtp_queue_messages
    size_bytes: dict[str, float]
    oldest_age: dict[str, float]
    at: float  # when the probe ran (Unix time)


def probed(mta: str, command: Sequence[str], timeout: float = 20) -> Probed:
    """One run of the real probe with `command`, and what its gauges then say."""
    metrics = ExporterMetrics()
    at = time.time()
    QueueProbe(QueueConfig(mta, tuple(command), timeout_seconds=timeout), metrics.queue_gauges(),
               now=lambda: at).run_once()

    def by_queue(name: str) -> dict[str, float]:
        return {s.labels["queue"]: s.value for f in metrics.registry.collect() for s in f.samples if s.name == name}

    return Probed(metrics.registry.get_sample_value("smtp_queue_probe_success") or 0.0,
                  by_queue("smtp_queue_messages"), by_queue("smtp_queue_size_bytes"),
                  by_queue("smtp_queue_oldest_message_age_seconds"), at)
