"""Log-in throttling through a real Daphne started as docs/deployment.md says, behind
nginx: `--proxy-headers`, with nginx writing each client's own address into
X-Forwarded-For. Everyone comes from the proxy's address, yet one client guessing a
password locks out only that client."""

import re
import subprocess
import sys

import httpx
import pytest

from tests.browser.conftest import ROOT, daphne

PASSWORD = "a-long-password-77"
ATTACKER = "203.0.113.9"
ALICE_AT_HOME = "198.51.100.4"

CREATE_USERS = f"""
from chat import services
services.register_user("admin", "{PASSWORD}")
services.register_user("alice", "{PASSWORD}")
"""


@pytest.fixture(scope="module")
def proxied_url(app_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxied")
    env = {**app_env, "DATABASE_URL": f"sqlite:///{tmp / 'app.sqlite3'}", "BEHIND_PROXY": "true"}
    for command in (["migrate", "--noinput", "--verbosity", "0"], ["shell", "-c", CREATE_USERS]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)
    with daphne(env, "--proxy-headers") as url:
        yield url


def _log_in(url: str, password: str, client_address: str) -> httpx.Response:
    """alice's log-in form, as nginx forwards it for a client at `client_address`."""
    headers = {"X-Forwarded-For": client_address}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        page = http.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return http.post(
            "/login/",
            data={"username": "alice", "password": password, "csrfmiddlewaretoken": token},
        )


def test_behind_the_documented_proxy_one_client_guessing_locks_out_only_itself(proxied_url):
    statuses = [_log_in(proxied_url, "wrong", ATTACKER).status_code for _ in range(10)]
    assert statuses == [200] * 9 + [429]
    refused = _log_in(proxied_url, PASSWORD, ATTACKER)
    assert refused.status_code == 429
    assert "Too many failed log-in attempts" in refused.text
    # alice, at home, through the same proxy: her own address, her own count.
    response = _log_in(proxied_url, PASSWORD, ALICE_AT_HOME)
    assert response.status_code == 302
    assert response.headers["location"] == "/"
