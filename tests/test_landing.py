"""The landing page: self-contained, escaped, and bare when locked."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from clawrap.core._auth import AuthInfo
from clawrap.core._config import Settings
from clawrap.http._landing import render_landing

HOSTILE = '<script>alert("x")</script><img src=https://evil.example/x.png>'
LOGGED_IN = AuthInfo("cli_login", True, "Claude Code login (~/.claude/.credentials.json)")


class _Page(HTMLParser):
    """Collects tags, attribute values, style text and visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def render(**overrides: object) -> str:
    args: dict[str, object] = {
        "base_url": "http://127.0.0.1:8000",
        "models": ["sonnet", "opus", "haiku", "claude-sonnet-4-5"],
        "version": "0.1.0",
    }
    args.update(overrides)
    settings = args.pop("settings", Settings())
    auth = args.pop("auth", LOGGED_IN)
    return render_landing(settings, auth, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("needs_key", [False, True])
def test_page_references_nothing_outside_itself(needs_key: bool) -> None:
    settings = Settings(api_key="k" * 32 if needs_key else None)
    page = parse(render(settings=settings))
    urls = [v for name, v in page.attrs if name in ("src", "href", "action", "srcset", "data")]
    for url in urls:
        assert not re.match(r"\s*(https?:)?//", url, re.IGNORECASE), url
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    css = "".join(page.styles)
    assert "@import" not in css and "url(" not in css


def test_page_names_version_auth_models_and_base_url() -> None:
    text = "".join(parse(render()).text)
    assert "0.1.0" in text
    assert "Claude Code login" in text
    assert "claude-sonnet-4-5" in text
    assert "http://127.0.0.1:8000/v1" in text


def test_page_has_snippets_for_each_client_and_tool() -> None:
    text = "".join(parse(render()).text)
    for needle in ("curl", "-N", "from openai import OpenAI", "import anthropic"):
        assert needle in text
    for tool in ("Continue", "Cline", "Zed", "Open WebUI", "Aider"):
        assert tool in text


def test_base_url_given_with_v1_is_not_doubled() -> None:
    text = "".join(parse(render(base_url="http://127.0.0.1:8000/v1/")).text)
    assert "/v1/v1" not in text


def test_hostile_model_name_is_escaped() -> None:
    html = render(models=[HOSTILE])
    page = parse(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert HOSTILE in "".join(page.text)


def test_hostile_auth_summary_and_version_are_escaped() -> None:
    auth = AuthInfo("none", False, HOSTILE, HOSTILE)
    page = parse(render(auth=auth, version=HOSTILE))
    assert "script" not in page.tags and "img" not in page.tags


def test_key_placeholder_appears_only_when_a_key_is_required() -> None:
    assert "CLAWRAP_API_KEY" in render(settings=Settings(api_key="k" * 32))
    assert "Authorization: Bearer" not in render()


def test_the_key_itself_never_appears() -> None:
    secret = "clawrap-secret-value-123456"
    assert secret not in render(settings=Settings(api_key=secret))


def test_unready_auth_shows_how_to_fix_it() -> None:
    auth = AuthInfo("none", False, "no Claude credentials found", "run `claude login`")
    text = "".join(parse(render(auth=auth)).text)
    assert "not ready" in text and "claude login" in text


def test_locked_page_shows_nothing_but_the_notice() -> None:
    html = render(locked=True, models=["claude-sonnet-4-5"], version="9.9.9")
    text = " ".join(" ".join(parse(html).text).split())
    assert "API key" in text and "Authorization: Bearer" in text and "x-api-key" in text
    for leaked in ("9.9.9", "claude-sonnet-4-5", "Claude Code login", "127.0.0.1", "curl"):
        assert leaked not in html
    assert not [v for name, v in parse(html).attrs if name in ("href", "src")]
