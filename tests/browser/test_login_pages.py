"""The login pages in a real browser: sign in with the keyboard as a person would, see who
you are, sign out, get a wrong password refused — and the pages stay accessible and load
nothing from anywhere but the gateway. Screenshots land in test-artifacts/."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.browser.conftest import ADA_GROUPS, ADA_PASSWORD
from tests.support.facade import pkce_pair

# Problems a person using a screen reader or the keyboard would hit, found in the live DOM.
ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("<html> has no lang");
  if (!document.title.trim()) problems.push("the page has no title");
  const headings = document.querySelectorAll("h1");
  if (headings.length !== 1) problems.push(`${headings.length} <h1> elements, expected one`);
  if (!document.querySelector("main")) problems.push("no <main> landmark");
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push(`${el.tagName.toLowerCase()} ${el.name || el.id} has no label`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!(el.innerText || el.getAttribute("aria-label") || "").trim()) problems.push(`a ${el.tagName.toLowerCase()} without a name`);
  }
  for (const el of document.querySelectorAll("img:not([alt])")) problems.push(`image ${el.src} without alt`);
  const ids = [...document.querySelectorAll("[id]")].map(el => el.id);
  for (const id of new Set(ids)) if (ids.filter(x => x === id).length > 1) problems.push(`id ${id} used twice`);
  return problems;
}"""


def accessibility_problems(page) -> list[str]:
    return page.evaluate(ACCESSIBILITY_PROBLEMS)


def sign_in(page, username: str, password: str) -> None:
    """Click the labels and type, then press Enter: labels, focus and submit all have to work."""
    page.get_by_text("Username", exact=True).click()
    page.keyboard.type(username)
    page.get_by_text("Password", exact=True).click()
    page.keyboard.type(password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "posted from another site" not in page.locator("main").inner_text(), (
        "the login app took the browser's own form post for a cross-site one: under `Referrer-Policy: "
        "no-referrer` Chromium sends `Origin: null` on form posts (login_app/pages.py: use `same-origin`)")


def test_login_page_offers_the_provider_and_the_local_form(login_gateway, browser_page, artifacts):
    page = browser_page.page
    response = page.goto(f"{login_gateway.url}/oauth/login?next=/oauth/session")
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in to the MCP Gateway"
    provider = page.get_by_role("link", name="Sign in with")
    href = urlsplit(provider.get_attribute("href"))
    assert (href.path, parse_qs(href.query)["next"]) == ("/oauth/login/generic", ["/oauth/session"])
    assert page.get_by_label("Username").is_visible() and page.get_by_label("Password").is_visible()
    assert page.get_by_role("button", name="Sign in").is_visible()
    assert accessibility_problems(page) == []
    page.screenshot(path=artifacts / "login.png", full_page=True)
    assert browser_page.foreign_requests(login_gateway.url) == []


def test_a_person_signs_in_sees_who_they_are_and_signs_out(login_gateway, browser_page, artifacts):
    page = browser_page.page
    page.goto(f"{login_gateway.url}/oauth/session")
    assert urlsplit(page.url).path == "/oauth/login"  # not signed in yet: sent to the login page

    sign_in(page, "ada", ADA_PASSWORD)

    assert urlsplit(page.url).path == "/oauth/session", page.content()
    assert page.get_by_role("heading", level=1).inner_text() == "Signed in"
    body = page.locator("main").inner_text()
    assert "ada" in body
    for group in ADA_GROUPS:
        assert group in body
    for scope in ("mcp:registry:read", "mcp:server:currenttime:read", "mcp:server:currenttime:execute"):
        assert scope in body
    assert "mcp:registry:admin" not in body
    assert accessibility_problems(page) == []
    page.screenshot(path=artifacts / "signed-in.png", full_page=True)

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert urlsplit(page.url).path == "/oauth/login"
    page.goto(f"{login_gateway.url}/oauth/session")
    assert urlsplit(page.url).path == "/oauth/login"  # the session is gone, not just the page
    assert browser_page.foreign_requests(login_gateway.url) == []


def test_a_wrong_password_is_refused_on_the_page(login_gateway, browser_page, artifacts):
    page = browser_page.page
    page.goto(f"{login_gateway.url}/oauth/login")

    with page.expect_response(lambda r: r.url.endswith("/oauth/login/local")) as answer:
        sign_in(page, "ada", "not-the-password")

    assert answer.value.status == 401
    alert = page.get_by_role("alert")
    assert alert.inner_text() == "Wrong username or password."
    assert page.get_by_label("Username").is_visible()  # the form is there to try again
    assert all(cookie["name"] != "mcp_gateway_session" for cookie in page.context.cookies())
    assert accessibility_problems(page) == []
    page.screenshot(path=artifacts / "login-error.png", full_page=True)
    assert browser_page.foreign_requests(login_gateway.url) == []


def test_a_failed_provider_sign_in_explains_itself(login_gateway, browser_page, artifacts):
    page = browser_page.page
    response = page.goto(f"{login_gateway.url}/oauth/callback?code=made-up&state=made-up")
    assert response is not None and 400 <= response.status < 500
    assert page.get_by_role("alert").inner_text().strip()
    back = page.get_by_role("link", name="Back to sign-in")
    assert urlsplit(back.get_attribute("href")).path.startswith("/oauth/login")
    assert accessibility_problems(page) == []
    page.screenshot(path=artifacts / "idp-error.png", full_page=True)
    assert browser_page.foreign_requests(login_gateway.url) == []


def test_an_mcp_client_is_named_on_the_consent_page_and_gets_its_code(login_gateway, browser_page, artifacts,
                                                                      mcp_client_redirect_uri):
    gw, page, redirect_uri = login_gateway, browser_page.page, mcp_client_redirect_uri
    registered = httpx.post(f"{gw.url}/oauth/register", timeout=15, json={
        "client_name": "Browser Test Client", "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"]})
    assert registered.status_code == 201, registered.text
    resource = f"{gw.url}/api/streamable/currenttime"
    _, challenge = pkce_pair()
    query = urlencode({"response_type": "code", "client_id": registered.json()["client_id"],
                       "redirect_uri": redirect_uri, "state": "browser-state", "code_challenge": challenge,
                       "code_challenge_method": "S256", "resource": resource})

    page.goto(f"{gw.url}/oauth/authorize?{query}")
    assert urlsplit(page.url).path == "/oauth/login"
    sign_in(page, "ada", ADA_PASSWORD)

    assert urlsplit(page.url).path == "/oauth/authorize", page.locator("main").inner_text()
    consent = page.locator("main").inner_text()
    for shown in ("Browser Test Client", redirect_uri, resource, "ada", "mcp:server:currenttime:execute"):
        assert shown in consent
    assert accessibility_problems(page) == []
    page.screenshot(path=artifacts / "consent.png", full_page=True)

    with page.expect_navigation(url=lambda url: url.startswith(redirect_uri)):
        page.get_by_role("button", name="Allow").click()
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == ["browser-state"] and answer["code"][0] and answer["iss"] == [gw.url]
    assert [url for url in browser_page.foreign_requests(gw.url) if not url.startswith(redirect_uri)] == []
