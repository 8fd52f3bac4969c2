"""Backends that die the way the out-of-memory killer kills, referenced as ``hardening_backends:Name``."""

from __future__ import annotations

import os
import signal
from typing import Any, ClassVar

from harness.measure.backends.null import NullBackend


class SigkillBackend(NullBackend):
    """SIGKILLs its own process for batches larger than 2, as the OOM killer would."""

    name: ClassVar[str] = "sigkill"

    def infer(self, prepared: Any) -> None:
        if len(next(iter(prepared.values()))) > 2:
            os.kill(os.getpid(), signal.SIGKILL)
