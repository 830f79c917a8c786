"""The sans-IO protocol layer: API JSON in, the internal request out; internal events
in, API bytes out.

One folder per API surface (``openai/`` chat completions, ``anthropic/`` messages),
each a decoder/encoder pair behind a :class:`~clawrap.protocol._dialect.Dialect`, and
the stages they share: SSE framing, output limits, JSON fences and JSON output checks,
the conversation model and history matching. Nothing here does I/O or imports trio,
hypercorn, sqlite3 or the SDK. See ``docs/ARCHITECTURE.md``.
"""
