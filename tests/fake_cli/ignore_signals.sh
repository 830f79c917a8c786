# A CLI that ignores SIGTERM and SIGINT: the real CLI, exec'd with both ignored
# (ignored signals survive exec), so clawrap talks to the real CLI directly.
trap '' TERM INT
exec "$FAKE_REAL_CLI" "$@"
