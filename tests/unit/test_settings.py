from __future__ import annotations

import pytest

from shared.errors import SettingsError
from shared.settings import RateLimit, Settings, parse_rate_limits

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
VALID = {
    "DEFENDER_TENANT_ID": TENANT,
    "DEFENDER_CLIENT_ID": CLIENT,
    "KEY_VAULT_URL": "https://kv.vault.azure.net",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def test_defaults_apply_when_only_required_settings_are_given() -> None:
    settings = Settings.from_environ(VALID)

    assert settings.api_url == "https://api.security.microsoft.com"
    assert settings.token_scope == "https://api.securitycenter.microsoft.com/.default"
    assert settings.secret_name == "defender-client-secret"
    assert settings.batch_delete_limits == (RateLimit(30, 60), RateLimit(1500, 3600))
    assert settings.list_limits == (RateLimit(100, 60), RateLimit(1500, 3600))
    assert not settings.disable_instance_discovery
    assert settings.concurrency == 8


@pytest.mark.parametrize("text", ["0", "31", "four", "-1"])
def test_a_concurrency_outside_one_to_thirty_is_refused(text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({**VALID, "BATCH_CONCURRENCY": text})

    assert caught.value.problems == [
        "BATCH_CONCURRENCY must be a whole number of at least 1 and at most 30"
    ]


def test_every_bad_setting_is_named_in_one_error() -> None:
    environ = {
        "DEFENDER_CLIENT_ID": "not-a-guid",
        "DEFENDER_API_URL": "http://api.security.microsoft.com",
        "BATCH_DELETE_RATE_LIMITS": "30 per minute",
        "DEFENDER_TOKEN_SCOPE": "https://api.securitycenter.microsoft.com",
    }

    with pytest.raises(SettingsError) as caught:
        Settings.from_environ(environ)

    text = str(caught.value)
    for name in (
        "DEFENDER_TENANT_ID",
        "DEFENDER_CLIENT_ID",
        "DEFENDER_API_URL",
        "BATCH_DELETE_RATE_LIMITS",
        "DEFENDER_TOKEN_SCOPE",
        "KEY_VAULT_URL",
        "AzureWebJobsStorage",
    ):
        assert name in text
    assert len(caught.value.problems) == 7


def test_http_api_url_is_allowed_only_on_loopback() -> None:
    settings = Settings.from_environ(
        {**VALID, "DEFENDER_API_URL": "http://127.0.0.1:8080/"}
    )

    assert settings.api_url == "http://127.0.0.1:8080"


def test_api_url_with_a_path_is_refused() -> None:
    with pytest.raises(SettingsError, match="DEFENDER_API_URL"):
        Settings.from_environ({**VALID, "DEFENDER_API_URL": "https://x.example/api"})


def test_local_secret_is_used_only_without_key_vault(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {**VALID, "DEFENDER_CLIENT_SECRET": "local"}
    del environ["KEY_VAULT_URL"]

    settings = Settings.from_environ(environ)

    assert settings.client_secret == "local"
    assert "DEFENDER_CLIENT_SECRET" in caplog.text
    assert "local" not in repr(settings)


def test_custom_authority_host_turns_instance_discovery_off() -> None:
    public = Settings.from_environ(
        {**VALID, "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us"}
    )
    private = Settings.from_environ(
        {**VALID, "AZURE_AUTHORITY_HOST": "https://127.0.0.1:4430"}
    )

    assert not public.disable_instance_discovery
    assert private.disable_instance_discovery


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30/60s,1500/3600s", (RateLimit(30, 60), RateLimit(1500, 3600))),
        ("1500/1h, 30/1m", (RateLimit(30, 60), RateLimit(1500, 3600))),
        ("30/6s", (RateLimit(30, 6),)),
    ],
)
def test_rate_limits_parse(text: str, expected: tuple[RateLimit, ...]) -> None:
    assert parse_rate_limits(text) == expected


@pytest.mark.parametrize("text", ["", "30", "0/60s", "30/0s", "x/60s", "30/60d"])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_limits(text)


def test_public_base_url_keeps_a_gateways_path_without_the_trailing_slash() -> None:
    settings = Settings.from_environ(
        {**VALID, "PUBLIC_BASE_URL": "https://gateway.example/defender/"}
    )

    assert settings.public_base_url == "https://gateway.example/defender"


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example",
        "https://app.example/?code=key",
        "https://app.example/#top",
        "https://user@app.example",
        "app.example",
    ],
)
def test_a_public_base_url_that_is_not_a_plain_https_url_is_refused(
    url: str,
) -> None:
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL"):
        Settings.from_environ({**VALID, "PUBLIC_BASE_URL": url})


@pytest.mark.parametrize(
    "host", ["app.example/api", "user@app.example", "app.example:port"]
)
def test_a_website_hostname_that_is_not_a_host_is_refused(host: str) -> None:
    with pytest.raises(SettingsError, match="WEBSITE_HOSTNAME"):
        Settings.from_environ({**VALID, "WEBSITE_HOSTNAME": host})


FORGED_REQUEST = "http://evil.example/api/indicators/batch-delete"
LOOPBACK_REQUEST = "http://127.0.0.1:7071/api/indicators/batch-delete"


@pytest.mark.parametrize(
    ("environ", "request_url", "expected"),
    [
        pytest.param(
            {"PUBLIC_BASE_URL": "https://gateway.example/ioc"},
            LOOPBACK_REQUEST,
            "https://gateway.example/ioc",
            id="the setting, whatever the request",
        ),
        pytest.param(
            {"WEBSITE_HOSTNAME": "ioc.azurewebsites.net"},
            FORGED_REQUEST,
            "https://ioc.azurewebsites.net",
            id="App Service's host name, over https",
        ),
        pytest.param(
            {"WEBSITE_HOSTNAME": "localhost:7071"},
            "http://evil.example:7071/api",
            "http://localhost:7071",
            id="Core Tools' host name, in the request's scheme",
        ),
        pytest.param(
            {},
            LOOPBACK_REQUEST,
            "http://127.0.0.1:7071",
            id="a loopback request's host, in local development",
        ),
        pytest.param({}, FORGED_REQUEST, "", id="nothing: relative URLs"),
    ],
)
def test_the_public_base_url_never_comes_from_a_non_loopback_request(
    environ: dict[str, str], request_url: str, expected: str
) -> None:
    settings = Settings.from_environ({**VALID, **environ})

    assert settings.public_base_url_for(request_url) == expected
