"""The landing page at ``/``: what this server is, how it reaches Claude, and how to use it.

One self-contained HTML document: inline CSS, no scripts, fonts, images or
links to other hosts, so it renders the same offline. Every inserted value is
escaped. With ``locked=True`` (a key is required and the request carried none)
the page says only that a key is needed and how to send it.
"""

from __future__ import annotations

import json
from html import escape

from clawrap.core._auth import AuthInfo
from clawrap.core._config import Settings

# The browser may load nothing from anywhere; inline styles only.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_CSS = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fbfbfa; --muted: #5f6368;
  --box: #f0efec; --line: #d9d7d2; --ok: #1a7f37; --bad: #b3261e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e6e3; --bg: #161616; --muted: #a0a0a0;
  --box: #222220; --line: #3a3a37; --ok: #4ac26b; --bad: #ff7b72; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 52rem; padding: 2rem 1.25rem 4rem; color: var(--fg);
  background: var(--bg); font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .35rem; }
p, li { color: var(--fg); } .muted { color: var(--muted); }
code, pre { font: 13.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: var(--box); padding: .1em .3em; border-radius: 4px; }
pre { background: var(--box); border: 1px solid var(--line); border-radius: 6px;
  padding: .75rem 1rem; overflow-x: auto; white-space: pre; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; } td { padding: .15rem 1rem .15rem 0; vertical-align: top; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
ul.models { columns: 2; padding-left: 1.2rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _code(text: str) -> str:
    return f"<pre><code>{escape(text)}</code></pre>"


def _root(base_url: str) -> str:
    """The server's root URL, whether given with or without ``/v1``."""
    root = base_url.strip().rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def render_locked() -> str:
    """The page for a request without the required key: the notice and nothing else."""
    body = (
        "<h1>API key required</h1>\n"
        "<p>This server needs an API key. Send it with every request, as</p>\n"
        + _code("Authorization: Bearer <your key>")
        + "\n<p>or, for Anthropic clients,</p>\n"
        + _code("x-api-key: <your key>")
    )
    return _page("API key required", body)


def render_landing(
    settings: Settings,
    auth: AuthInfo,
    *,
    base_url: str,
    models: list[str],
    version: str,
    locked: bool = False,
) -> str:
    """The landing page. ``base_url`` is where clients reach this server (e.g.
    ``http://127.0.0.1:8000``, with or without ``/v1``)."""
    if locked:
        return render_locked()
    root = _root(base_url)
    v1 = root + "/v1"
    needs_key = bool(settings.api_key)
    model = settings.default_model if settings.default_model in models or not models else models[0]
    sections = [
        _header(version, root, v1),
        _status(auth, needs_key),
        _models(models, settings.default_model),
        _quickstart(v1, root, model, needs_key),
        _ides(v1, model, needs_key),
    ]
    return _page(f"clawrap {version}", "\n".join(sections))


def _header(version: str, root: str, v1: str) -> str:
    return (
        f'<h1>clawrap <span class="muted">{escape(version)}</span></h1>\n'
        "<p>Claude Code behind the OpenAI Chat Completions and Anthropic Messages APIs. "
        "Point any OpenAI or Anthropic client at this server; each request runs "
        "through the Claude Code CLI on this machine, with your Claude login or key.</p>\n"
        "<table>"
        f"<tr><td>OpenAI base URL</td><td><code>{escape(v1)}</code></td></tr>"
        f"<tr><td>Anthropic base URL</td><td><code>{escape(root)}</code></td></tr>"
        "<tr><td>Endpoints</td><td><code>POST /v1/chat/completions</code> "
        "<code>POST /v1/messages</code> "
        '<a href="/v1/models"><code>GET /v1/models</code></a> '
        '<a href="/health"><code>GET /health</code></a></td></tr>'
        "</table>"
    )


def _status(auth: AuthInfo, needs_key: bool) -> str:
    mark = '<span class="ok">ready</span>' if auth.ok else '<span class="bad">not ready</span>'
    parts = [
        "<h2>Status</h2>",
        f"<p>Claude authentication: {mark} &mdash; {escape(auth.summary)}</p>",
    ]
    if not auth.ok and auth.hint:
        parts.append(f"<p>To fix: {escape(auth.hint)}, then restart clawrap.</p>")
    if needs_key:
        parts.append(
            "<p>Clients must send this server's API key: <code>Authorization: Bearer "
            "&lt;key&gt;</code> (OpenAI clients) or <code>x-api-key: &lt;key&gt;</code> "
            "(Anthropic clients). Below it is read from <code>$CLAWRAP_API_KEY</code>.</p>"
        )
    else:
        parts.append(
            "<p>No API key is required on this server; clients that insist on one may "
            "send any value.</p>"
        )
    parts.append(
        '<p class="muted">Run <code>clawrap doctor</code> on this machine to check the setup.</p>'
    )
    return "\n".join(parts)


def _models(models: list[str], default: str) -> str:
    items = "".join(f"<li><code>{escape(m)}</code></li>" for m in models)
    return (
        "<h2>Models</h2>\n"
        f"<p>Default: <code>{escape(default)}</code>. The aliases <code>sonnet</code>, "
        "<code>opus</code> and <code>haiku</code> follow the CLI's current model of "
        f'each family.</p>\n<ul class="models">{items}</ul>'
    )


def _quickstart(v1: str, root: str, model: str, needs_key: bool) -> str:
    shell_key = "$CLAWRAP_API_KEY" if needs_key else "none"
    py_key = 'os.environ["CLAWRAP_API_KEY"]' if needs_key else '"none"'
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    stream_body = json.dumps(
        {
            "model": model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Write a haiku about the sea."}],
        }
    )
    auth_header = f'  -H "Authorization: Bearer {shell_key}" \\\n' if needs_key else ""
    curl = (
        f"curl {v1}/chat/completions \\\n"
        '  -H "Content-Type: application/json" \\\n'
        f"{auth_header}"
        f"  -d '{body}'"
    )
    curl_stream = (
        f"curl -N {v1}/chat/completions \\\n"
        '  -H "Content-Type: application/json" \\\n'
        f"{auth_header}"
        f"  -d '{stream_body}'"
    )
    imports = "import os\n" if needs_key else ""
    openai_py = (
        f"{imports}from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{v1}", api_key={py_key})\n'
        "stream = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        "    stream=True,\n"
        ")\n"
        "for chunk in stream:\n"
        "    if chunk.choices and chunk.choices[0].delta.content:\n"
        '        print(chunk.choices[0].delta.content, end="", flush=True)\n'
    )
    anthropic_py = (
        f"{imports}import anthropic\n\n"
        f'client = anthropic.Anthropic(base_url="{root}", api_key={py_key})\n'
        "message = client.messages.create(\n"
        f'    model="{model}",\n'
        "    max_tokens=1024,\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(message.content[0].text)\n"
    )
    return "\n".join(
        [
            "<h2>Try it</h2>",
            "<h3>curl: a chat completion</h3>",
            _code(curl),
            "<h3>curl: streaming</h3>",
            _code(curl_stream),
            "<h3>Python, the <code>openai</code> package</h3>",
            _code(openai_py),
            "<h3>Python, the <code>anthropic</code> package</h3>",
            _code(anthropic_py),
        ]
    )


def _ides(v1: str, model: str, needs_key: bool) -> str:
    key = "the key in $CLAWRAP_API_KEY" if needs_key else "any value, e.g. none"
    tools = [
        (
            "Continue",
            "contrib/continue/config.yaml",
            f"provider: openai, apiBase: {v1}, model: {model}",
        ),
        (
            "Cline",
            "contrib/cline/README.md",
            f'API Provider "OpenAI Compatible", Base URL {v1}, Model ID {model}',
        ),
        (
            "Zed",
            "contrib/zed/settings.json",
            f"language_models.openai_compatible with api_url {v1}",
        ),
        (
            "Open WebUI",
            "contrib/open-webui/README.md",
            f"OPENAI_API_BASE_URL={v1}",
        ),
        (
            "Aider",
            "contrib/aider/.aider.conf.yml",
            f"openai-api-base: {v1}, model: openai/{model}",
        ),
    ]
    rows = "".join(
        f"<tr><td><strong>{escape(name)}</strong></td><td><code>{escape(summary)}</code>"
        f'<br><span class="muted">full setup: {escape(path)}</span></td></tr>'
        for name, path, summary in tools
    )
    return (
        "<h2>Editors and tools</h2>\n"
        f"<p>Each takes an OpenAI-compatible base URL, a model and an API key "
        f"({escape(key)}). Ready-made configurations are in the <code>contrib/</code> "
        "folder of the clawrap source.</p>\n"
        f"<table>{rows}</table>"
    )


__all__ = ["render_landing", "render_locked"]
