"""The console with authentication on: `observer up --demo` verifying tokens from a real OIDC issuer process
(devservers/oidc.py), in a real headless Chromium.

- The page and its files are served without a token, the API is not; with an OAuth client configured
  (OBSERVER_CONSOLE_CLIENT_ID) the page offers "Sign in".
- "Sign in" is the whole authorization code flow with PKCE S256 in the browser: the page discovers the issuer,
  the browser goes to its /authorize, comes back with a code, the page exchanges it at /token (a cross-origin
  fetch: the issuer's CORS and the observer's CSP both have to allow it) and the logs view shows the demo's lines
  with the token the issuer signed. A refused sign-in comes back as a notice and the sign-in button again.
- A user bound by the authorization policy to one component is offered only that component in the pickers, and a
  deep link to another component's logs shows the API's 403 notice.
- Without a client, the console asks for a bearer token; with a valid one it shows the demo's logs, and a token
  the issuer did not sign is refused (the API's 401 brings the sign-in back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from devservers.browser import chromium
from devservers.observer import observer_up
from devservers.oidc import OidcIssuer, SigningKey
from tests.e2e.test_console import CART, _attr, _until

CLIENT_ID = "observer-console"


ADMINS = [{"role": "admin", "groups": ["devs"]}]
#: The demo's cart, and nothing else, for the group `cart-devs`.
CART_ONLY = [{"role": "viewer", "groups": ["cart-devs"], "namespace": "demo", "project": "shop", "component": "cart"}]


def _env(
    issuer: OidcIssuer, base: Path, client_id: str = "", bindings: list[dict[str, Any]] | None = None
) -> dict[str, str]:
    """The observer's environment: tokens from `issuer` for `observer-api`, decided by a policy of `bindings`."""
    policy = base / "policy.yaml"
    roles = {"admin": ["*"], "viewer": ["logs:view", "traces:view", "metrics:view"]}
    policy.write_text(yaml.safe_dump({"roles": roles, "bindings": bindings or ADMINS}))
    return {
        "JWT_DISABLED": "false",
        "JWKS_URL": issuer.jwks_url,
        "JWT_ISSUER": issuer.url,
        "JWT_AUDIENCE": "observer-api",
        "OBSERVER_AUTHZ_POLICY_FILE": str(policy),
        "OBSERVER_CONSOLE_CLIENT_ID": client_id,
    }


@pytest.fixture
def signer(oidc_issuer: OidcIssuer) -> tuple[OidcIssuer, SigningKey]:
    """The issuer, reset, publishing one key; tokens signed with that key are the valid ones."""
    oidc_issuer.reset()
    key = oidc_issuer.new_key()
    oidc_issuer.publish(key)
    return oidc_issuer, key


def test_the_page_is_open_the_data_is_not_and_it_knows_where_to_sign_in(
    tmp_path: Path, signer: tuple[OidcIssuer, SigningKey]
) -> None:
    issuer, _ = signer
    with observer_up(tmp_path / "observer", env=_env(issuer, tmp_path, CLIENT_ID)) as plane:
        page = httpx.get(f"{plane.api}/", timeout=30)
        assert page.status_code == 200 and "Observer console" in page.text
        assert f"connect-src 'self' {issuer.url}" in page.headers["content-security-policy"]  # the token exchange
        assert httpx.get(f"{plane.api}/console/js/main.js", timeout=30).status_code == 200
        config = httpx.get(f"{plane.api}/console/config.json", timeout=30).json()["auth"]
        assert config == {
            "enabled": True,
            "issuer": issuer.url,
            "clientId": CLIENT_ID,
            "scopes": "openid profile email",
        }
        assert httpx.get(f"{plane.api}/api/v1alpha1/scopes", timeout=30).status_code == 401
        with chromium() as driver:
            driver.get(f"{plane.api}/#/logs")
            _until("the sign-in button", lambda: driver.find_element(By.XPATH, "//button[.='Sign in']"))
            assert "needs a token from" in driver.find_element(By.ID, "main").text


def test_a_pasted_token_shows_the_logs_and_a_forged_one_does_not(
    tmp_path: Path, signer: tuple[OidcIssuer, SigningKey]
) -> None:
    issuer, key = signer
    with observer_up(tmp_path / "observer", "--demo", env=_env(issuer, tmp_path)) as plane, chromium() as driver:
        driver.get(f"{plane.api}/#/logs?" + "&".join(f"{k}={v}" for k, v in CART.items()))
        field = _until("the token form", lambda: driver.find_element(By.NAME, "token"))
        stranger = issuer.new_key()  # never published: its tokens are refused
        field.send_keys(issuer.mint(stranger, groups=["devs"]), Keys.ENTER)
        _until("the sign-in back after a 401", lambda: "session has ended" in driver.find_element(By.ID, "status").text)
        field = driver.find_element(By.NAME, "token")
        field.send_keys(issuer.mint(key, groups=["devs"]))
        assert _late_refusal(driver) == 401  # another request of the old session comes back refused
        field.send_keys(Keys.ENTER)  # the same field, still holding the token: the panel was not drawn again
        _until(
            "the cart's log lines",
            lambda: "cart" in " ".join(cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.logs td")),
        )
        assert "Signed in" in driver.find_element(By.ID, "session").text
        assert _attr(driver.find_element(By.NAME, "component"), "value") == "cart"


def _late_refusal(driver: WebDriver) -> int:
    """Makes one more API call through the page's own client (the module the page loaded) without a token, as a
    request still in flight when the first 401 came back would; returns its status."""
    script = """
        const done = arguments[arguments.length - 1];
        import("/console/js/api.js").then((api) => api.get("/api/v1alpha1/scopes"))
          .then(() => done(200), (error) => done(error.status || -1));
    """
    status: int = driver.execute_async_script(script)
    return status


def _sign_in(driver: WebDriver, url: str) -> None:
    """Opens `url` in the console and clicks Sign in; returns once the console is back from the issuer."""
    driver.get(url)
    _until("the sign-in button", lambda: driver.find_element(By.XPATH, "//button[.='Sign in']")).click()
    _until("signed in", lambda: "Signed in" in driver.find_element(By.ID, "session").text)


def _log_text(driver: WebDriver) -> str:
    return " ".join(cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "table.logs td"))


def test_sign_in_runs_the_code_flow_and_shows_the_logs(tmp_path: Path, signer: tuple[OidcIssuer, SigningKey]) -> None:
    issuer, key = signer
    with observer_up(tmp_path / "observer", "--demo", env=_env(issuer, tmp_path, CLIENT_ID)) as plane:
        issuer.register_client(CLIENT_ID, redirect_uris=[f"{plane.api}/"])
        issuer.sign_in_as(key, subject="alice", groups=["devs"])
        with chromium() as driver:
            _sign_in(driver, f"{plane.api}/#/logs?{urlencode(CART)}")
            _until("the cart's log lines", lambda: "cart" in _log_text(driver))
            assert issuer.issued() == {"codes": 1, "tokens": 1}
            assert "code=" not in driver.current_url and "state=" not in driver.current_url  # the code is gone
            assert driver.current_url.startswith(f"{plane.api}/#/logs?")  # back where the user was
            assert _attr(driver.find_element(By.NAME, "component"), "value") == "cart"
            errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            assert not errors, errors

            driver.refresh()  # the token lives in this tab's session storage: no second trip to the issuer
            _until("the cart's log lines again", lambda: "cart" in _log_text(driver))
            assert issuer.issued() == {"codes": 1, "tokens": 1}

            driver.find_element(By.XPATH, "//button[.='Sign out']").click()
            _until(
                "the sign-in button after signing out", lambda: driver.find_element(By.XPATH, "//button[.='Sign in']")
            )


def test_a_refused_sign_in_says_so_and_offers_sign_in_again(
    tmp_path: Path, signer: tuple[OidcIssuer, SigningKey]
) -> None:
    issuer, key = signer
    with observer_up(tmp_path / "observer", env=_env(issuer, tmp_path, CLIENT_ID)) as plane:
        issuer.register_client(CLIENT_ID, redirect_uris=[f"{plane.api}/"])
        issuer.sign_in_as(key, refuse=True)
        with chromium() as driver:
            driver.get(f"{plane.api}/#/logs")
            _until("the sign-in button", lambda: driver.find_element(By.XPATH, "//button[.='Sign in']")).click()
            _until("the refusal", lambda: "refused" in driver.find_element(By.ID, "status").text)
            assert driver.find_element(By.XPATH, "//button[.='Sign in']")
            assert "error=" not in driver.current_url
            assert issuer.issued() == {"codes": 0, "tokens": 0}

            issuer.sign_in_as(key, groups=["devs"], code_ttl_s=0)  # the code expires before it is exchanged
            driver.find_element(By.XPATH, "//button[.='Sign in']").click()
            _until("the expired code", lambda: "expired" in driver.find_element(By.ID, "status").text)
            assert driver.find_element(By.XPATH, "//button[.='Sign in']")
            assert "code=" not in driver.current_url


def test_a_user_bound_to_one_component_sees_only_it(tmp_path: Path, signer: tuple[OidcIssuer, SigningKey]) -> None:
    issuer, key = signer
    env = _env(issuer, tmp_path, CLIENT_ID, bindings=CART_ONLY)
    with observer_up(tmp_path / "observer", "--demo", env=env) as plane:
        issuer.register_client(CLIENT_ID, redirect_uris=[f"{plane.api}/"])
        issuer.sign_in_as(key, subject="bob", groups=["cart-devs"])
        with chromium() as driver:
            _sign_in(driver, f"{plane.api}/#/logs?{urlencode(CART)}")
            _until("the cart's log lines", lambda: "cart" in _log_text(driver))
            offered = _until(
                "the pickers' suggestions",
                lambda: {_attr(option, "value") for option in driver.find_elements(By.CSS_SELECTOR, "datalist option")},
            )
            assert "cart" in offered and "demo" in offered and "shop" in offered
            assert not offered & {"frontend", "catalog", "payments"}

            driver.get(f"{plane.api}/#/logs?{urlencode({**CART, 'component': 'payments'})}")
            notice = _until(
                "the 403 notice", lambda: driver.find_element(By.CSS_SELECTOR, "#main .results [role='alert']")
            )
            assert "Access denied" in notice.text
            assert not driver.find_elements(By.CSS_SELECTOR, "table.logs tbody tr")
            assert "Signed in" in driver.find_element(By.ID, "session").text  # a 403 is not a 401: still signed in
