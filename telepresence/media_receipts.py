"""Calls' latency receipts: one on request, live calls' pushed to their agents when due, and
the last one logged and fed to the metrics when a call's media closes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from media.room import Role
from telepresence.calls import Call, CallState
from telepresence.media_load import MediaLoad
from telepresence.metrics import Metrics
from telepresence.room_handle import RoomHandle

logger = logging.getLogger(__name__)

Message = dict[str, Any]


class MediaReceipts:
    """Builds receipts from calls' rooms and sends live ones every ``interval_s``."""

    def __init__(
        self,
        interval_s: float,
        metrics: Metrics,
        load: MediaLoad,
        send: Callable[[Call, Role, Message], None],
    ) -> None:
        self.interval_s = interval_s
        self.metrics = metrics
        self.load = load
        self._send = send
        self._next_receipt = 0.0

    def receipt(self, call: Call) -> Message | None:
        """The call's latency receipt so far: per stage p50/p95 in milliseconds, and what a browser lacks."""
        if call.room is None:
            return None
        self.load.sample()
        return {
            "type": "receipt",
            "call_id": call.id,
            "stages": call.room.receipt_summary(),
            "missing": call.room.missing,
            "cpu_pct": call.room.cpu_pct,
        }

    @property
    def next_receipt_at(self) -> float:
        """When live receipts are due next (monotonic seconds)."""
        return self._next_receipt

    def push_receipts(self, calls: list[Call], now: float) -> None:
        """Send live calls' receipts to their agents when due."""
        if now < self._next_receipt:
            return
        for call in calls:
            if call.state is CallState.LIVE and (receipt := self.receipt(call)) is not None:
                self._send(call, "agent", receipt)
        self._next_receipt = now + self.interval_s

    def closed(self, call: Call, room: RoomHandle) -> None:
        """The call's media is closing: log its receipt and feed the metrics."""
        summary = room.receipt_summary()
        for stage, figures in summary.items():
            self.metrics.observe_call_stage(stage, figures["p95"])
        logger.info("%s: latency receipt %s", call.id, _format(summary))


def _format(summary: dict[str, dict[str, float]]) -> str:
    return (
        ", ".join(f"{stage} p50 {f['p50']:.1f} p95 {f['p95']:.1f} ms" for stage, f in sorted(summary.items()))
        or "no frames"
    )
