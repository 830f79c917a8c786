"""The HTTP shell: the ASGI app and its handwritten router, security checks, the
request log, one exchange per completion request, and the describing routes.

It reaches a backend only through :class:`~clawrap.core._backend.Backend`, never the
Claude backend's internals. See ``docs/ARCHITECTURE.md``.
"""
