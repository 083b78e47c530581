"""Walk a browser login without a browser: follow redirects and submit the HTML forms.

    url = await headless_authorize(client, authorize_url, "alice", "alice-password",
                                   stop_at_prefix="http://127.0.0.1:9/callback")
    code = url.params["code"]

From the authorization URL it follows every redirect itself; on a page it submits the first
form with a password field (filled with the credentials), or else the form whose submit
button has `consent_action` as its value (or name), keeping every other field of the form
(hidden CSRF tokens, `next`, ...). It stops at the first redirect to a URL starting with
`stop_at_prefix` and returns that URL without requesting it. Cookies stay in the client's jar,
so the same client can go on as the logged-in browser. Works for the test IdP's pages and for
the gateway's own login and consent pages: plain forms, no JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

MAX_HOPS = 20
_USERNAME_NAMES = ("username", "login", "user", "email", "identifier")
_TEXT_TYPES = {"text", "email", ""}
_SUBMIT_TYPES = {"submit", "image"}
_SKIPPED_TYPES = {"button", "reset", "file"}


class HeadlessLoginError(Exception):
    """The walk did not reach the redirect URI: an error page, refused credentials, no form."""


@dataclass
class HtmlForm:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # successful controls, in order
    text_inputs: list[str] = field(default_factory=list)
    password_inputs: list[str] = field(default_factory=list)
    submitters: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of submit buttons

    def submitter(self, action: str) -> tuple[str, str] | None:
        return next((button for button in self.submitters if action in button), None)

    def request(self, client: httpx.AsyncClient, page_url: httpx.URL, values: dict[str, str],
                submitter: tuple[str, str] | None = None) -> httpx.Request:
        data = [(name, values.pop(name) if name in values else value) for name, value in self.fields]
        data.extend(values.items())
        if submitter is not None and submitter[0]:
            data.append(submitter)
        url = page_url.join(self.action) if self.action else page_url
        if self.method == "get":
            return client.build_request("GET", url.copy_with(query=None), params=data)
        return client.build_request("POST", url, data=_grouped(data))


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Form pairs as httpx's `data` wants them; repeated names keep all their values."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


class _FormParser(HTMLParser):
    """Collects the forms of a page and their controls (input, button, select, textarea)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self._form: HtmlForm | None = None
        self._select: tuple[str, list[str], list[str]] | None = None  # name, selected, all options
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = HtmlForm(attributes.get("action", ""), attributes.get("method", "get").lower())
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input":
            self._add_input(self._form, attributes)
        elif tag == "button" and attributes.get("type", "submit").lower() == "submit":
            self._form.submitters.append((attributes.get("name", ""), attributes.get("value", "")))
        elif tag == "select" and "name" in attributes:
            self._select = (attributes["name"], [], [])
        elif tag == "option" and self._select is not None:
            value = attributes.get("value", "")
            self._select[2].append(value)
            if "selected" in attributes:
                self._select[1].append(value)
        elif tag == "textarea" and "name" in attributes:
            self._textarea = (attributes["name"], [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None:
            name, selected, options = self._select
            if self._form is not None and (selected or options):
                self._form.fields.append((name, (selected or options)[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            if self._form is not None:
                self._form.fields.append((self._textarea[0], "".join(self._textarea[1])))
            self._textarea = None

    @staticmethod
    def _add_input(form: HtmlForm, attributes: dict[str, str]) -> None:
        kind = attributes.get("type", "").lower()
        name = attributes.get("name", "")
        if kind in _SUBMIT_TYPES:
            form.submitters.append((name, attributes.get("value", "")))
            return
        if not name or kind in _SKIPPED_TYPES or "disabled" in attributes:
            return
        if kind in {"checkbox", "radio"} and "checked" not in attributes:
            return
        if kind == "password":
            form.password_inputs.append(name)
        elif kind in _TEXT_TYPES:
            form.text_inputs.append(name)
        form.fields.append((name, attributes.get("value", "on" if kind in {"checkbox", "radio"} else "")))


def parse_forms(html: str) -> list[HtmlForm]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _username_input(form: HtmlForm) -> str | None:
    for name in form.text_inputs:
        if name.lower() in _USERNAME_NAMES:
            return name
    return form.text_inputs[0] if form.text_inputs else None


def _snippet(response: httpx.Response) -> str:
    return " ".join(response.text.split())[:500]


def _next_form_request(client: httpx.AsyncClient, response: httpx.Response, username: str, password: str,
                       consent_action: str | None) -> tuple[httpx.Request, bool]:
    """The submission of the page's login form (True) or consent form (False)."""
    forms = parse_forms(response.text)
    for form in forms:
        if form.password_inputs:
            values = {form.password_inputs[0]: password}
            username_input = _username_input(form)
            if username_input is not None:
                values[username_input] = username
            first_submitter = form.submitters[0] if form.submitters else None
            return form.request(client, response.url, values, first_submitter), True
    if consent_action is not None:
        for form in forms:
            submitter = form.submitter(consent_action)
            if submitter is not None:
                return form.request(client, response.url, {}, submitter), False
    raise HeadlessLoginError(f"no form to submit at {response.url} (consent_action={consent_action!r}): "
                             f"{_snippet(response)}")


async def headless_authorize(client: httpx.AsyncClient, authorize_url: str, username: str, password: str, *,
                             stop_at_prefix: str, consent_action: str | None = None,
                             max_hops: int = MAX_HOPS) -> httpx.URL:
    """Log `username` in from `authorize_url`; the redirect to `stop_at_prefix...`, not followed."""
    request = client.build_request("GET", authorize_url)
    sent_credentials = False
    for _ in range(max_hops):
        response = await client.send(request, follow_redirects=False)
        if response.is_redirect:
            location = response.url.join(response.headers["location"])
            if str(location).startswith(stop_at_prefix):
                return location
            request = client.build_request("GET", location)
            sent_credentials = False
            continue
        if response.status_code != 200:
            raise HeadlessLoginError(f"HTTP {response.status_code} at {response.url}: {_snippet(response)}")
        if sent_credentials and any(form.password_inputs for form in parse_forms(response.text)):
            raise HeadlessLoginError(f"credentials for {username!r} refused at {response.url}: {_snippet(response)}")
        request, sent_credentials = _next_form_request(client, response, username, password, consent_action)
    raise HeadlessLoginError(f"no redirect to {stop_at_prefix} within {max_hops} hops")
