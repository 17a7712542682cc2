"""Log-in throttling (django-axes): every log-in form, keyed by user name and the real
client address, with X-Forwarded-For believed only from TRUSTED_PROXIES."""

import importlib
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.test import Client

import config.settings

RIGHT = "a-long-password-123"  # tests/conftest.py gives every persona this password
ATTACKER = "203.0.113.9"
NEIGHBOUR = "198.51.100.4"


def _log_in(client, username, password, path="/login/", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def _fail(client, username, times, path="/login/", **extra):
    for _ in range(times):
        _log_in(client, username, "wrong", path, **extra)


def _logged_in(client) -> bool:
    return client.get("/").status_code == 200


# --- every log-in form ---------------------------------------------------------------


def test_the_admin_login_refuses_the_right_password_after_30_wrong_ones(staff_user):
    client = Client()
    for _ in range(30):
        response = _log_in(client, "admin", "wrong", "/admin/login/?next=/admin/")
        assert response.status_code in (200, 429)
    response = _log_in(client, "admin", RIGHT, "/admin/login/?next=/admin/")
    assert response.status_code == 429
    assert "Too many failed log-in attempts" in response.text
    assert client.get("/admin/").status_code == 302  # still sent to the log-in page


def test_the_app_login_shows_the_lockout_page_in_the_apps_style(user):
    client = Client()
    responses = [_log_in(client, "alice", "wrong") for _ in range(10)]
    assert [r.status_code for r in responses] == [200] * 9 + [429]
    response = _log_in(client, "alice", RIGHT)
    assert response.status_code == 429
    assert "Log-in as “alice” from your address is paused" in response.text
    assert "for 15 minutes after 10 wrong passwords" in response.text
    assert 'href="/login/"' in response.text  # back to the form
    assert 'class="topbar"' in response.text  # the app's own page, not a bare 403
    assert not _logged_in(client)


def test_the_lockout_page_of_the_admin_leads_back_to_the_admin_login(staff_user):
    client = Client()
    _fail(client, "admin", 10, "/admin/login/?next=/admin/")
    response = _log_in(client, "admin", RIGHT, "/admin/login/?next=/admin/")
    assert 'href="/admin/login/?next=/admin/"' in response.text


# --- keyed by name and address: one attacker cannot lock everyone out ----------------


def test_a_user_being_guessed_does_not_lock_out_another_user_at_the_same_address(user, other_user):
    # Everyone behind one NAT, or one proxy, shares the address.
    attacker, neighbour = Client(REMOTE_ADDR=ATTACKER), Client(REMOTE_ADDR=ATTACKER)
    _fail(attacker, "alice", 30)
    assert _log_in(attacker, "alice", RIGHT).status_code == 429
    assert _log_in(neighbour, "mallory", RIGHT).status_code == 302
    assert _logged_in(neighbour)


def test_a_user_being_guessed_elsewhere_still_logs_in_from_their_own_address(user):
    attacker, alice = Client(REMOTE_ADDR=ATTACKER), Client(REMOTE_ADDR=NEIGHBOUR)
    _fail(attacker, "alice", 30)
    assert _log_in(alice, "alice", RIGHT).status_code == 302
    assert _logged_in(alice)


def test_guessing_unknown_names_is_counted_too(db):
    client = Client()
    _fail(client, "nobody", 10)
    assert _log_in(client, "nobody", "wrong").status_code == 429


# --- the client address ----------------------------------------------------------------


def test_a_forged_forwarded_for_from_a_client_does_not_change_its_key(user):
    # No TRUSTED_PROXIES (the default): the header is never read.
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for n in range(10):
        _log_in(attacker, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = _log_in(attacker, "alice", RIGHT, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_a_forged_forwarded_for_from_a_client_that_is_not_the_trusted_proxy_is_ignored(
    user, settings
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    attacker = Client(REMOTE_ADDR=ATTACKER)  # talks to the app directly, past the proxy
    for n in range(10):
        _log_in(attacker, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"10.1.1.{n}, 192.0.2.{n}")
    assert _log_in(attacker, "alice", RIGHT).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_behind_a_configured_proxy_the_forwarded_address_is_the_key(user, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # nginx's $proxy_add_x_forwarded_for appends the real peer to whatever the client sent:
    # the forged left part changes on every try, the key does not.
    attacker = Client(**proxy)
    for n in range(10):
        _log_in(attacker, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}")
    assert _log_in(attacker, "alice", RIGHT, HTTP_X_FORWARDED_FOR=ATTACKER).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    # alice herself, through the same proxy from her own address, is let in.
    alice = Client(**proxy)
    assert _log_in(alice, "alice", RIGHT, HTTP_X_FORWARDED_FOR=NEIGHBOUR).status_code == 302


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop(user, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    client = Client(REMOTE_ADDR="::ffff:10.0.0.2")  # an IPv4 peer on a dual-stack socket
    for _ in range(10):
        _log_in(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"{ATTACKER}, fd00::7, 10.9.9.9")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_a_garbled_hop_stops_the_walk_at_the_last_trusted_proxy(user, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client = Client(REMOTE_ADDR="10.0.0.2")
    _log_in(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"{ATTACKER}, not-an-address")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.2"}


def test_a_bad_trusted_proxies_setting_stops_the_start(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,nginx")
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES .* not 'nginx'"):
        importlib.reload(config.settings)
    monkeypatch.delenv("TRUSTED_PROXIES")
    importlib.reload(config.settings)


# --- cool-off and reset ----------------------------------------------------------------


def _age_attempts(minutes: int) -> None:
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def test_the_lockout_ends_after_the_cool_off(user):
    client = Client()
    _fail(client, "alice", 10)
    _age_attempts(14)
    assert _log_in(client, "alice", RIGHT).status_code == 429  # 14 minutes: still paused
    # That early try did not start the wait again: one more minute and a bit is enough.
    _age_attempts(2)
    assert _log_in(client, "alice", RIGHT).status_code == 302
    assert _logged_in(client)


def test_a_successful_log_in_clears_the_earlier_failures(user):
    client = Client()
    _fail(client, "alice", 9)
    assert _log_in(client, "alice", RIGHT).status_code == 302
    client.post("/logout/")
    assert not AccessAttempt.objects.exists()
    _fail(client, "alice", 9)  # nine more: not ten in a row
    assert _log_in(client, "alice", RIGHT).status_code == 302
