#!/bin/sh
# Starts clawrap for launchd with the API key read from ~/.config/clawrap/api-key,
# so the key is in no plist and on no command line. Install as ~/.local/bin/clawrap-launch.
set -eu
KEY_FILE="$HOME/.config/clawrap/api-key"
# launchd gives agents a minimal PATH; add the usual places clawrap is installed.
PATH="$HOME/.local/bin:/opt/homebrew/bin:/usr/local/bin:$PATH"
export PATH
if [ -r "$HOME/.config/clawrap/env" ]; then
    set -a
    . "$HOME/.config/clawrap/env"
    set +a
fi
if [ ! -r "$KEY_FILE" ]; then
    echo "clawrap-launch: $KEY_FILE is missing; create it with: openssl rand -hex 32 > $KEY_FILE" >&2
    exit 78  # EX_CONFIG: launchd's KeepAlive does not hammer a config error (ThrottleInterval)
fi
CLAWRAP_API_KEY="$(cat "$KEY_FILE")"
export CLAWRAP_API_KEY
exec clawrap serve
