"""deploy/azuredeploy.json: settings, secrets, identity and runtime, offline."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

import shared.settings as settings_module
from localdev.ncrontab import parse_schedule
from shared.ids import MAX_IDS_PER_BATCH
from shared.jobs import MAX_PIECES_PER_JOB
from shared.settings import SETTING_NAMES, Settings

from .conftest import ROOT
from .templates import (
    PARAMETER_REF,
    VARIABLE_REF,
    app_settings,
    code_span,
    default_value,
    markdown_table,
    resources_of_type,
    strings_in,
)

ARM_SCHEMA = (
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
)

# Azure built-in role definition IDs: the same GUIDs in every subscription and
# cloud (Microsoft Learn, "Azure built-in roles").
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"

VAULT = "Microsoft.KeyVault/vaults"
STORAGE = "Microsoft.Storage/storageAccounts"

# What the app's own identity must hold, and where. Table: the app's jobs,
# budget, cap and audit. Blob Data Owner and Queue Data Contributor: what
# Microsoft's guidance on identity-based AzureWebJobsStorage asks for the
# host itself (keys, timer schedule monitors and singleton leases live in
# blobs; some host features use queues).
REQUIRED_APP_ROLES = {
    (KEY_VAULT_SECRETS_USER, VAULT),
    (STORAGE_TABLE_DATA_CONTRIBUTOR, STORAGE),
    (STORAGE_BLOB_DATA_OWNER, STORAGE),
    (STORAGE_QUEUE_DATA_CONTRIBUTOR, STORAGE),
}

# Settings the platform reads, not the app: the template defines them on top
# of SETTING_NAMES. Each is allowed here for the reason given.
PLATFORM_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION": "the Functions runtime's major version (~4)",
    "FUNCTIONS_WORKER_RUNTIME": "selects the Python language worker",
    "PYTHON_THREADPOOL_THREAD_COUNT": "the Python worker's threads (waits are I/O)",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the host sends logs",
    "AzureWebJobsStorage__accountName": "identity-based host storage, short form",
    "AzureWebJobsStorage__blobServiceUri": "identity-based host storage: blobs",
    "AzureWebJobsStorage__queueServiceUri": "identity-based host storage: queues",
    "AzureWebJobsStorage__credential": "host storage signs in with the identity",
    "WEBSITE_RUN_FROM_PACKAGE": "the URL of the app's zip package",
    "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID": "read that zip as the identity",
}

# Settings in SETTING_NAMES that the template leaves out (or empty) on
# purpose, each with the setting that replaces it in Azure.
#
# DEFENDER_CLIENT_SECRET: a secret is never part of a template. A value here
# would sit in the deployment history and in the app's configuration for
# anyone who can read either; the app reads the secret from Key Vault
# (KEY_VAULT_URL) with its managed identity instead, and the operator puts it
# into the vault after deployment.
# AzureWebJobsStorage: a connection string carries the storage account key.
# The host and the app sign in to storage with the managed identity instead,
# and the account has shared-key access turned off.
LEFT_OUT_ON_PURPOSE = {
    "DEFENDER_CLIENT_SECRET": "KEY_VAULT_URL",
    "AzureWebJobsStorage": "AzureWebJobsStorage__tableServiceUri",
}

# Stand-ins for values computed at deployment time, to check that the
# template's defaults pass the app's own validation.
DEPLOYMENT_VALUES = {
    "KEY_VAULT_URL": "https://kv-example.vault.azure.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stexample.table.core.windows.net/",
}
REQUIRED_PARAMETER_VALUES = {
    "defenderClientId": "66666666-7777-8888-9999-000000000000",
    "defenderTenantId": "11111111-2222-3333-4444-555555555555",
}

# settings.py constants that hold the documented defaults.
DEFAULT_CONSTANTS = {
    "DEFENDER_API_URL": "DEFAULT_API_URL",
    "DEFENDER_TOKEN_SCOPE": "DEFAULT_TOKEN_SCOPE",
    "DEFENDER_CLIENT_SECRET_NAME": "DEFAULT_SECRET_NAME",
    "BATCH_DELETE_RATE_LIMITS": "DEFAULT_BATCH_DELETE_LIMITS",
    "LIST_RATE_LIMITS": "DEFAULT_LIST_LIMITS",
    "SYNC_WAIT_SECONDS": "DEFAULT_SYNC_WAIT_S",
    "BATCH_LINGER_SECONDS": "DEFAULT_LINGER_S",
    "BATCH_CONCURRENCY": "DEFAULT_CONCURRENCY",
    "MAX_IDS_PER_REQUEST": "DEFAULT_MAX_IDS_PER_REQUEST",
    "MAX_DELETES_PER_DAY": "DEFAULT_MAX_DELETES_PER_DAY",
    "AUDIT_RETENTION_DAYS": "DEFAULT_AUDIT_RETENTION_DAYS",
}
_SECRET_LOOKING = re.compile(
    r"AccountKey=|SharedAccessSignature=|[?&]sig=|client_secret=|-----BEGIN",
    re.IGNORECASE,
)
_LIST_FUNCTIONS = re.compile(r"\blist[A-Za-z]*\(", re.IGNORECASE)
_GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")


def _readme_settings(readme: str) -> dict[str, str]:
    rows = markdown_table(readme, "## Settings")
    names = {code_span(row[0]): row[1] for row in rows}
    assert None not in names, "every row of the settings table names a `setting`"
    return {str(name): default for name, default in names.items()}


def _with_defaults(template: dict[str, Any]) -> dict[str, str]:
    """The app settings with every parameter at its default."""
    environ = {}
    for name, value in app_settings(template).items():
        match = PARAMETER_REF.fullmatch(value.strip("[]"))
        if match and match.group(1) in REQUIRED_PARAMETER_VALUES:
            environ[name] = REQUIRED_PARAMETER_VALUES[match.group(1)]
            continue
        resolved = default_value(template, value)
        environ[name] = (
            DEPLOYMENT_VALUES.get(name, "") if resolved is None else resolved
        )
    return environ


def _role_guid(template: dict[str, Any], expression: str) -> str:
    for variable in VARIABLE_REF.findall(expression):
        expression = expression.replace(
            f"variables('{variable}')", f"'{template['variables'][variable]}'"
        )
    (guid,) = _GUID.findall(expression)
    return str(guid)


def _scope_type(scope: str) -> str:
    return next(kind for kind in (VAULT, STORAGE) if kind in scope)


def test_is_an_arm_deployment_template(template: dict[str, Any]) -> None:
    assert template["$schema"] == ARM_SCHEMA
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", template["contentVersion"])


def test_every_parameter_and_variable_reference_resolves(
    template: dict[str, Any],
) -> None:
    text = " ".join(strings_in(template))
    used_parameters = set(PARAMETER_REF.findall(text))
    used_variables = set(VARIABLE_REF.findall(text))

    assert used_parameters <= set(template["parameters"])
    assert used_variables <= set(template["variables"])
    assert set(template["parameters"]) <= used_parameters, "unused parameters"


def test_app_settings_are_exactly_the_apps_settings_plus_the_platforms(
    template: dict[str, Any],
) -> None:
    defined = set(app_settings(template)) - set(PLATFORM_SETTINGS)

    assert set(LEFT_OUT_ON_PURPOSE) <= SETTING_NAMES
    assert defined | set(LEFT_OUT_ON_PURPOSE) == SETTING_NAMES


def test_settings_left_out_are_replaced_by_their_identity_based_forms(
    template: dict[str, Any],
) -> None:
    settings = app_settings(template)

    for name, replacement in LEFT_OUT_ON_PURPOSE.items():
        assert settings.get(name, "") == "", f"{name} must be absent or empty"
        assert settings[replacement], f"{name} is replaced by {replacement}"


def test_readme_settings_table_documents_exactly_setting_names(readme: str) -> None:
    assert set(_readme_settings(readme)) == SETTING_NAMES


def test_template_defaults_are_the_documented_defaults(
    template: dict[str, Any], readme: str
) -> None:
    settings = app_settings(template)
    checked = 0

    for name, documented in _readme_settings(readme).items():
        literal = code_span(documented)
        if name not in settings or literal is None:
            continue
        assert default_value(template, settings[name]) == literal, name
        checked += 1

    assert checked >= len(DEFAULT_CONSTANTS)


@pytest.mark.parametrize(("setting", "constant"), sorted(DEFAULT_CONSTANTS.items()))
def test_template_defaults_match_the_apps_own_defaults(
    template: dict[str, Any], setting: str, constant: str
) -> None:
    value = default_value(template, app_settings(template)[setting])
    expected = getattr(settings_module, constant)

    assert value is not None
    if isinstance(expected, int | float):
        assert float(value) == float(expected)
    else:
        assert value == expected


def test_optional_settings_stay_off_unless_the_deployer_turns_them_on(
    template: dict[str, Any], readme: str
) -> None:
    settings = app_settings(template)

    for name, documented in _readme_settings(readme).items():
        value = settings.get(name)
        if value is None or not documented.lower().startswith("none"):
            continue
        if PARAMETER_REF.search(value):
            assert default_value(template, value) == "", name


def test_defaults_pass_the_apps_own_settings_validation(
    template: dict[str, Any],
) -> None:
    settings = Settings.from_environ(_with_defaults(template))

    assert settings.key_vault_url == DEPLOYMENT_VALUES["KEY_VAULT_URL"]
    assert settings.client_secret is None
    assert settings.storage_connection_string is None


def test_every_timer_schedule_setting_is_defined_and_valid(
    template: dict[str, Any], function_configs: dict[str, dict[str, Any]]
) -> None:
    environ = _with_defaults(template)
    timers = [
        binding["schedule"]
        for config in function_configs.values()
        for binding in config["bindings"]
        if binding["type"] == "timerTrigger"
    ]

    assert timers
    for schedule in timers:
        for name in re.findall(r"%([^%]+)%", schedule):
            assert name in SETTING_NAMES, f"{name} is not in SETTING_NAMES"
            parse_schedule(environ[name])


def test_no_secret_value_is_in_the_template(template: dict[str, Any]) -> None:
    strings = list(strings_in(template))

    assert not [s for s in strings if _LIST_FUNCTIONS.search(s)], "no listKeys()"
    assert not [s for s in strings if _SECRET_LOOKING.search(s)]
    assert not resources_of_type(template, "Microsoft.KeyVault/vaults/secrets")
    for name, parameter in template["parameters"].items():
        if re.search(r"(password|secret|key|token)$", name, re.IGNORECASE):
            assert parameter["type"].lower() == "securestring", name
            assert "defaultValue" not in parameter, name


def test_storage_refuses_shared_keys(template: dict[str, Any]) -> None:
    (account,) = resources_of_type(template, STORAGE)

    assert account["properties"]["allowSharedKeyAccess"] is False
    assert account["properties"]["allowBlobPublicAccess"] is False


def test_key_vault_uses_rbac_and_soft_delete(template: dict[str, Any]) -> None:
    (vault,) = resources_of_type(template, VAULT)
    properties = vault["properties"]

    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert not properties.get("accessPolicies")


def test_the_apps_identity_holds_exactly_the_roles_it_needs(
    template: dict[str, Any],
) -> None:
    granted = set()
    for assignment in resources_of_type(
        template, "Microsoft.Authorization/roleAssignments"
    ):
        properties = assignment["properties"]
        if "identity.principalId" not in properties["principalId"]:
            continue
        assert "siteId" in properties["principalId"]
        assert properties["principalType"] == "ServicePrincipal"
        role = _role_guid(template, properties["roleDefinitionId"])
        granted.add((role, _scope_type(assignment["scope"])))

    assert granted == REQUIRED_APP_ROLES


def test_the_operator_may_be_granted_secrets_officer_on_the_vault_only(
    template: dict[str, Any],
) -> None:
    others = [
        a
        for a in resources_of_type(template, "Microsoft.Authorization/roleAssignments")
        if "identity.principalId" not in a["properties"]["principalId"]
    ]

    assert len(others) == 1
    (assignment,) = others
    assert assignment["condition"].startswith("[not(empty(")
    role = _role_guid(template, assignment["properties"]["roleDefinitionId"])
    assert (role, _scope_type(assignment["scope"])) == (
        KEY_VAULT_SECRETS_OFFICER,
        VAULT,
    )


def test_app_runs_python_3_11_on_functions_4_with_its_own_identity(
    template: dict[str, Any],
) -> None:
    (site,) = resources_of_type(template, "Microsoft.Web/sites")
    settings = app_settings(template)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

    assert site["properties"]["siteConfig"]["linuxFxVersion"] == "Python|3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert "linux" in site["kind"]
    assert site["identity"]["type"] == "SystemAssigned"
    assert site["properties"]["httpsOnly"] is True
    assert settings["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_plan_is_linux_consumption(template: dict[str, Any]) -> None:
    (plan,) = resources_of_type(template, "Microsoft.Web/serverfarms")

    assert plan["sku"] == {"name": "Y1", "tier": "Dynamic"}
    assert plan["properties"]["reserved"] is True


def test_application_insights_is_workspace_based(template: dict[str, Any]) -> None:
    (insights,) = resources_of_type(template, "Microsoft.Insights/components")
    (workspace,) = resources_of_type(
        template, "Microsoft.OperationalInsights/workspaces"
    )

    name = workspace["name"].strip("[]")

    assert name in insights["properties"]["WorkspaceResourceId"]
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in app_settings(template)


def test_outputs_name_the_app_the_vault_and_the_endpoint(
    template: dict[str, Any],
    function_configs: dict[str, dict[str, Any]],
    host_config: dict[str, Any],
) -> None:
    outputs = template["outputs"]
    (http,) = [
        binding
        for binding in function_configs["BatchDeleteHttp"]["bindings"]
        if binding["type"] == "httpTrigger"
    ]
    route = http["route"].replace("/{jobId?}", "")
    prefix = host_config["extensions"]["http"]["routePrefix"]

    assert {"functionAppName", "keyVaultName", "batchDeleteUrl"} <= set(outputs)
    assert outputs["batchDeleteUrl"]["value"].endswith(f"'/{prefix}/{route}')]")


def test_request_cap_cannot_exceed_what_one_job_holds(
    template: dict[str, Any],
) -> None:
    parameter = template["parameters"]["maxIdsPerRequest"]

    assert parameter["maxValue"] <= MAX_PIECES_PER_JOB * MAX_IDS_PER_BATCH
