"""The distribution profile: what it may hold, where it is read from, and that the source tree holds none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.connectors import profile
from app.connectors.profile import ProfileError, load, parse
from tests.test_packaging import _bundled, run_spec

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[quickbooks]
client_id = "qbo-id"
client_secret = "qbo-secret"
redirect = "relay"
relay_url = "https://sign-in.example.org/crossledger/quickbooks.html"

[xero]
client_id = "xero-id"

[salesforce]
client_id = "3MVG9-id"
port = 48000

[pipedrive]
client_id = "pd-id"
client_secret = "pd-secret"
"""


def test_a_profile_gives_each_providers_app_and_redirect():
    found = parse(GOOD)
    assert set(found) == {"quickbooks", "xero", "salesforce", "pipedrive"}
    assert found["quickbooks"].redirect_uri == "https://sign-in.example.org/crossledger/quickbooks.html"
    assert found["quickbooks"].client_secret == "qbo-secret"
    assert found["xero"].client_secret is None and found["xero"].redirect_uri == "http://127.0.0.1:47615/callback"
    assert found["salesforce"].redirect_uri == "http://127.0.0.1:48000/callback"


@pytest.mark.parametrize(("text", "says"), [
    ('[xero]\nclient_id = "x"\nclient_secret = "s"', "leave client_secret out"),
    ('[salesforce]\nclient_id = "x"\nclient_secret = "s"', "leave client_secret out"),
    ('[hubspot]\nclient_id = "x"', "client_secret is missing"),
    ('[quickbooks]\nclient_secret = "s"', "client_id is missing"),
    ('[quickbooks]\nclient_id = "x"\nclient_secret = "s"\nredirect = "relay"\nrelay_url = "http://example.org/q"',
     "https address of the relay page"),
    ('[zohocrm]\nclient_id = "x"\nclient_secret = "s"\nserver = "https://evil.example.com"', "local test server"),
    ('[freshbooks]\nclient_id = "x"', "unknown provider"),
    ('[pipedrive]\nclient_id = "x"\nclient_secret = "s"\nport = 80', "between 1024 and 65535"),
    ('[pipedrive]\nclient_id = "x"\nclient_secret = "s"\nscopes = "all"', "unknown setting scopes"),
    ("[pipedrive\n", "not a valid TOML file"),
])
def test_a_profile_that_cannot_be_used_says_which_entry_to_fix(text, says):
    with pytest.raises(ProfileError) as caught:
        parse(text, "my-profile.toml")
    assert says in caught.value.message and "my-profile.toml" in caught.value.message


def test_the_data_folders_profile_wins_over_the_bundles_provider_by_provider(tmp_path, monkeypatch):
    bundle, home = tmp_path / "bundle", tmp_path / "home"
    bundle.mkdir()
    home.mkdir()
    assert load(home) == {}  # running from source: no profile, the own-app path
    (bundle / profile.FILE_NAME).write_text(GOOD, encoding="utf-8")
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert load(home)["xero"].client_id == "xero-id"
    (home / profile.FILE_NAME).write_text('[xero]\nclient_id = "it-department-xero"\n', encoding="utf-8")
    found = load(home)
    assert found["xero"].client_id == "it-department-xero"  # the IT department's app for Xero
    assert found["quickbooks"].client_id == "qbo-id"  # the rest from the bundle
    assert found["xero"].source == str(home / profile.FILE_NAME)


def test_the_build_bakes_the_builders_profile_into_the_bundle(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSLEDGER_PROFILE", raising=False)
    assert profile.FILE_NAME not in _bundled(run_spec(monkeypatch))
    builders = tmp_path / "secrets" / "crossledger.toml"
    builders.parent.mkdir()
    builders.write_text(GOOD, encoding="utf-8")
    monkeypatch.setenv("CROSSLEDGER_PROFILE", str(builders))
    calls = run_spec(monkeypatch)
    assert profile.FILE_NAME in _bundled(calls)  # at the top of the bundle, where bundled_path() looks
    baked = next(src for src, dest in calls["Analysis"][0].kw["datas"] if src.endswith(profile.FILE_NAME))
    assert Path(baked).read_text(encoding="utf-8") == GOOD


def test_the_build_script_checks_the_profile_with_the_apps_own_reader(tmp_path):
    script = (ROOT / "packaging" / "build_linux.sh").read_text(encoding="utf-8")
    assert "CROSSLEDGER_PROFILE" in script and "-m app.connectors.profile" in script
    bad = tmp_path / "bad.toml"
    bad.write_text('[xero]\nclient_id = "x"\nclient_secret = "s"\n', encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text(GOOD, encoding="utf-8")
    run = [sys.executable, "-m", "app.connectors.profile"]
    refused = subprocess.run([*run, str(bad)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert refused.returncode == 1 and "leave client_secret out" in refused.stderr
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0 and "xero: public client" in ok.stdout and "quickbooks: secret" in ok.stdout


def test_no_app_registration_is_in_the_source_tree():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    assert not [f for f in tracked if f.endswith(profile.FILE_NAME)]
    assert profile.FILE_NAME in (ROOT / ".gitignore").read_text(encoding="utf-8")
    relay = (ROOT / "packaging" / "relay" / "quickbooks.html").read_text(encoding="utf-8")
    assert "client_secret" not in relay and "client_id" not in relay  # the relay page holds nothing to hide
