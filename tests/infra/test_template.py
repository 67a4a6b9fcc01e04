"""The azd template's security properties, read from the parsed Bicep (nothing here can deploy).

Each test names what would go wrong in a hospital's deployment if it failed: a storage key left on,
a secret in an app setting or an output, a missing or too broad role, a module fetched from a registry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import INFRA, app_settings, bicep_files, parsed, resources, template, unwrap, walk

# Built-in role definition ids (the same in every tenant).
ROLES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "e89c7a3c-2f64-4fa1-a847-3e4c9ba4283a": "DICOM Data Reader",
}
TOO_BROAD = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6210-4e45-a0f9-a6c5ee4c3a91": "Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_every_bicep_file_parses_and_uses_no_registry_module():
    files = bicep_files()
    assert {p.relative_to(INFRA).as_posix() for p in files} >= {
        "main.bicep", "modules/app.bicep", "modules/storage.bicep", "modules/keyvault.bicep",
        "modules/keyvault-secrets.bicep", "modules/monitoring.bicep", "modules/network.bicep"}
    for path in files:
        tree = parsed(path)
        assert tree.get("resources") or tree.get("modules"), f"{path} declares nothing"
        for name, module in tree.get("modules", {}).items():
            assert module["type"] == "local", f"{path}: module {name} comes from a registry ({module['detail']})"
            source = module["detail"]["path"]
            assert (path.parent / source).is_file(), f"{path}: module {name} names a missing file {source}"


def test_host_storage_takes_no_keys_no_anonymous_readers_and_tls_1_2_only():
    accounts = list(resources("Microsoft.Storage/storageAccounts"))
    assert accounts, "the template declares the host's storage account"
    for path, name, account in accounts:
        properties = account["properties"]
        assert properties["allowSharedKeyAccess"] is False, f"{path}:{name} keeps shared keys"
        assert properties["allowBlobPublicAccess"] is False, f"{path}:{name} allows public blobs"
        assert properties["minimumTlsVersion"] == "TLS1_2", f"{path}:{name} accepts TLS below 1.2"
        assert properties["supportsHttpsTrafficOnly"] is True
    for path, name, container in resources("Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert container["properties"]["publicAccess"] == "None", f"{path}:{name} is public"


def test_key_vault_uses_rbac_and_keeps_deleted_keys():
    vaults = list(resources("Microsoft.KeyVault/vaults"))
    assert len(vaults) == 1
    _, _, vault = vaults[0]
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert "accessPolicies" not in properties, "access policies bypass RBAC"
    assert properties["enablePurgeProtection"] is True and properties["enableSoftDelete"] is True
    secrets = {body["name"] for _, _, body in resources("Microsoft.KeyVault/vaults/secrets")}
    assert secrets == {"export-secret-key", "export-deidentification-key"}


def test_the_keys_reach_the_app_only_as_key_vault_references():
    settings = app_settings()
    vault_outputs = template("modules/keyvault.bicep")["outputs"]
    for setting, output in (("Export__SecretKey", "exportSecretKeyReference"),
                            ("Export__Deidentification__Key", "deidentificationKeyReference")):
        assert output in json.dumps(settings[setting]), f"{setting} is not the vault's reference"
        assert vault_outputs[output]["value"].startswith("@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}")


def test_no_setting_holds_a_key_or_a_connection_string_with_one():
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings, "host storage must be identity-based, not a connection string"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith(";Authorization=AAD")
    text = json.dumps(settings)
    for leak in ("listKeys", "listSecrets", "AccountKey", "SharedAccessSignature", "Seed", "exportSecretKey\""):
        assert leak not in text, f"an app setting is built from {leak}"


def test_no_output_and_no_parameter_file_carries_a_secret():
    for path in bicep_files():
        tree = parsed(path)
        for name, output in tree.get("outputs", {}).items():
            text = json.dumps(output)
            assert not any(d.get("type") == "secure" for d in output.get("decorators", [])), f"{path}: {name}"
            for leak in ("listKeys", "listSecrets", "Seed", "exportSecretKey\"", "fernet", ".value"):
                assert leak not in text, f"{path}: output {name} is built from {leak}"
        for name, parameter in tree.get("parameters", {}).items():
            if "Seed" in name:
                assert any(d.get("type") == "secure" for d in parameter["decorators"]), f"{path}: {name} not @secure"
    # The parameter file names environment values only: no literal secret can be committed there.
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert all(re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", p["value"]) for p in parameters.values()), parameters
    assert not any("Seed" in name for name in parameters)


def test_every_role_assignment_is_a_named_least_privilege_role_for_the_app_identity():
    granted: dict[str, list[str]] = {}
    for path, name, assignment in resources("Microsoft.Authorization/roleAssignments"):
        properties = assignment["properties"]
        assert properties["principalType"] == "ServicePrincipal", f"{path}:{name}"
        ids = _role_ids(path, parsed(path)["resources"][name]["config"])  # loop header included
        assert ids, f"{path}:{name}: role not traceable to a built-in role id"
        for role in ids:
            assert role not in TOO_BROAD, f"{path}:{name} grants {TOO_BROAD[role]}"
            granted.setdefault(ROLES.get(role, role), []).append(f"{path.name}:{name}")
    assert set(granted) == set(ROLES.values()), granted


def _role_ids(path: Path, expression: Any) -> list[str]:
    """The built-in role ids an assignment can grant: literal, from a variable of its file
    (a plain id, or an object of ids looped over), or from a parameter that main.bicep fills with a variable."""
    text = json.dumps(expression)
    found = GUID.findall(text)
    tree = parsed(path)
    for name, variable in tree.get("variables", {}).items():
        if re.search(rf"\b{name}\b", text):
            found += [v for v in walk(variable["value"]) if isinstance(v, str) and GUID.fullmatch(v)]
    for name in tree.get("parameters", {}):
        if re.search(rf"\b{name}\b", text):
            main = template("main.bicep")
            for module in main["modules"].values():
                if (INFRA / module["detail"]["path"]).resolve() == path.resolve():
                    given = unwrap(module["config"])["params"][name]
                    if isinstance(given, str) and given in main["variables"]:
                        found += GUID.findall(json.dumps(main["variables"][given]["value"]))
    return found


def test_the_app_is_flex_consumption_linux_python_3_13_with_one_user_assigned_identity():
    (_, _, plan), = resources("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["properties"]["reserved"] is True
    (_, _, app), = resources("Microsoft.Web/sites")
    assert app["kind"] == "functionapp,linux" and app["identity"]["type"] == "UserAssigned"
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert app["properties"]["httpsOnly"] is True and app["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert app["properties"]["keyVaultReferenceIdentity"] == "identityId", "references must resolve as the identity"
    publishing = {body["name"]: body["properties"]["allow"]
                  for _, _, body in resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert publishing == {"ftp": False, "scm": False}


def test_telemetry_needs_entra_and_logs_reach_log_analytics():
    (_, _, insights), = resources("Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True
    (_, _, diagnostics), = resources("Microsoft.Insights/diagnosticSettings")
    assert [log["category"] for log in diagnostics["properties"]["logs"]] == ["FunctionAppLogs"]


def test_the_optional_network_has_private_endpoints_for_storage_and_key_vault():
    network = template("modules/network.bicep")
    services = [e["service"] for e in network["variables"]["endpoints"]["value"]]
    assert services == ["blob", "queue", "table", "vault"]
    main = template("main.bicep")
    assert main["modules"]["network"]["config"]["condition"] == "vnetEnabled"
    (_, _, vnet), = resources("Microsoft.Network/virtualNetworks")
    app_subnet = next(s for s in vnet["properties"]["subnets"] if s["name"] == "app")
    assert app_subnet["properties"]["delegations"][0]["properties"]["serviceName"] == "Microsoft.App/environments"


def test_outputs_give_the_url_and_the_cli_command_line():
    outputs = template("main.bicep")["outputs"]
    assert {"DICOM_EXPORT_URL", "DICOM_EXPORT_CLI", "AZURE_FUNCTION_APP_NAME"} <= set(outputs)
    assert "dicom-export" in json.dumps(outputs["DICOM_EXPORT_CLI"])


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_resources_are_not_hidden_from_checkov_behind_conditions(path):
    # checkov does not look inside a conditional resource (`= if (...) {`): it would pass unchecked. Put such
    # resources in a conditional module instead (its file is scanned whole).
    for name, resource in parsed(path).get("resources", {}).items():
        config = resource["config"]
        assert not ("condition" in config and config.get("condition")), f"{path}: resource {name} is conditional"
        assert unwrap(config) is not None
