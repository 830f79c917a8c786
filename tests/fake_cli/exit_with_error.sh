# A CLI that cannot start: an error on stderr, a non-zero exit, nothing on stdout.
# The text holds a server path and a key-like string that must never reach a client.
echo "claude: fatal: cannot read /opt/private/claude/settings.json (key sk-ant-fake-0000)" >&2
exit 2
