"""Remote backends: measure a running inference server over HTTP (``openai``, ``kserve-v2``).

They follow the backend contract of :mod:`harness.measure.backends.base`, so every load pattern
drives them unchanged and the clock rules stay the same (latency from the scheduled time; the
request's network round trip is part of the measured service). Shared HTTP pieces:
:mod:`harness.measure.backends.remote.transport`."""
