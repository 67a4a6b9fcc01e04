"""azure.yaml and main.parameters.json against what azd reads, and the app settings against what the code reads."""

from __future__ import annotations

import ast
import json
import re

import yaml

from tests.infra.bicep import INFRA, ROOT, SETTING_NAME, app_settings, template, unwrap

# The top-level fields of azd's azure.yaml schema (v1.0), the service fields, and the hook names azd runs.
AZD_FIELDS = {"name", "resourceGroup", "metadata", "infra", "services", "pipeline", "hooks", "requiredVersions",
              "state", "platform", "workflows", "cloud", "resources"}
SERVICE_FIELDS = {"project", "host", "language", "module", "dist", "docker", "k8s", "config", "hooks",
                  "resourceName", "resourceGroup", "image", "apiVersion", "env", "uses"}
HOOKS = {f"{when}{what}" for when in ("pre", "post") for what in ("provision", "deploy", "up", "down", "restore",
                                                                    "package")}


def test_azure_yaml_has_only_fields_azd_reads_and_points_at_this_template():
    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert set(spec) <= AZD_FIELDS, set(spec) - AZD_FIELDS
    assert re.fullmatch(r"[a-z][a-z0-9-]{1,62}", spec["name"])
    assert spec["infra"]["provider"] == "bicep"
    assert (ROOT / spec["infra"]["path"] / f"{spec['infra']['module']}.bicep").is_file()
    assert (ROOT / spec["infra"]["path"] / f"{spec['infra']['module']}.parameters.json").is_file()
    (service_name, service), = spec["services"].items()
    assert set(service) <= SERVICE_FIELDS
    assert service["host"] == "function" and service["language"] in ("python", "py")
    assert (ROOT / service["project"] / "function_app.py").is_file()
    # azd finds the app to deploy by this tag.
    (app,) = [r for r in template("modules/app.bicep")["resources"].values() if r["type"] == "Microsoft.Web/sites"]
    assert f"'azd-service-name': '{service_name}'" in (INFRA / "modules/app.bicep").read_text()
    assert app["config"]["kind"] == "functionapp,linux"
    for hook, body in spec.get("hooks", {}).items():
        assert hook in HOOKS, hook
        for platform in body.values():
            assert platform["shell"] in ("sh", "pwsh") and platform["run"]


def test_the_parameter_file_fills_every_required_parameter_and_names_no_unknown_one():
    parameters = template("main.bicep")["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(parameters), set(given) - set(parameters)
    required = {name for name, p in parameters.items() if "default" not in p}
    assert required <= set(given), required - set(given)
    # The key-keeping switch must come from the azd environment the postprovision hook writes.
    assert given["keysExist"]["value"] == "${EXPORT_KEYS_EXIST=false}"
    assert "EXPORT_KEYS_EXIST" in (ROOT / "azure.yaml").read_text()


# Settings the code reads that the template leaves alone, and why.
NOT_SET_BY_THE_TEMPLATE = {
    "DicomStore__ConnectionString": "a store reached with a key; the template's stores use the identity",
    "DicomStore__ContainerName": "the default container dicomweb is used",
    "DicomStore__Username": "basic auth to an on-premises DICOMweb server: the operator adds it as a Key Vault reference",
    "DicomStore__Password": "idem",
    "DicomStore__Token": "bearer auth to a DICOMweb server: idem",
    "DicomStore__Scope": "the Azure DICOM service's scope is the default",
    "DicomStore__DataPartitions": "off by default; the operator turns it on for a DICOMweb server with data partitions",
    "DicomStore__Host": "a PACS (DicomStore__Type=dimse) is on-premises: the operator sets it (docs/DIMSE.md)",
    "DicomStore__Port": "idem",
    "DicomStore__CalledAETitle": "idem",
    "DicomStore__CallingAETitle": "default DICOM-EXPORT, registered on the PACS",
    "DicomStore__Tls": "idem: the operator turns DICOM TLS on for a PACS that offers it",
    "DicomStore__TlsCaFile": "idem",
    "DicomStore__TlsCertificateFile": "idem",
    "DicomStore__TlsKeyFile": "idem",
    "DicomStore__TlsServerName": "idem",
    "DicomStore__ConnectTimeoutSeconds": "default",
    "DicomStore__TimeoutSeconds": "default",
    "DicomStore__MaxAssociations": "default; docs/DIMSE.md says when to lower it",
    "Export__AllowEmulator": "local development only",
    "Export__AllowPublicAccess": "off by default, as it should be",
    "Export__AllowSasTokens": "default",
    "Export__AllowedHostSuffixes": "default: Azure's blob endpoints",
    "Export__BatchSize": "default; docs/SCALING.md says when to change it",
    "Export__CopyMode": "stream, the default, is the only mode for an identity store",
    "Export__Lanes": "1, the default: one orchestration per export; docs/SCALING.md says when lanes pay",
    "Export__MaxParallelBatches": "default; docs/SCALING.md",
    "Export__MaxParallelThreads": "default; docs/SCALING.md",
    "Export__MaxRequestBytes": "default",
    "Export__RetryOptions__MaxNumberOfAttempts": "default",
    "Export__RetryOptions__FirstRetryIntervalSeconds": "default",
    "Export__RetryOptions__BackoffCoefficient": "default",
    "Export__SecretKeyFile": "local development only: Azure uses Export__SecretKey",
    "Export__Deidentification__KeyFile": "local development only",
    "AzureWebJobsStorage__accountName": "the template gives the service URIs instead",
    "Export__Notification__AllowPrivateAddresses": "off by default, as it should be (docs/NOTIFICATIONS.md)",
    "Export__Notification__CaFile": "a receiver behind a private CA: the operator adds the bundle",
    "Export__Notification__MaxAttempts": "default",
    "Export__Notification__FirstRetryIntervalSeconds": "default",
}
# Settings the template sets that the Functions host reads, not the app's code.
READ_BY_THE_HOST = {
    "AzureWebJobsStorage__queueServiceUri": "Durable Functions' control and work-item queues",
    "AzureWebJobsStorage__tableServiceUri": "Durable Functions' history and instance tables",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the host sends telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "the identity the host signs telemetry with",
}
APP_CODE = ["shared", "activities", "orchestrations", "endpoints", "function_app.py"]


def settings_the_code_reads() -> set[str]:
    found = set()
    for place in APP_CODE:
        paths = [ROOT / place] if place.endswith(".py") else sorted((ROOT / place).rglob("*.py"))
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING_NAME.match(node.value):
                    found.add(node.value)
    return found


def test_every_setting_the_code_reads_is_set_by_the_template_or_left_to_its_default_on_purpose():
    read, written = settings_the_code_reads(), set(app_settings())
    forgotten = read - written - set(NOT_SET_BY_THE_TEMPLATE)
    assert not forgotten, f"the code reads {sorted(forgotten)}: set them in infra/ or list them here with why"
    stale = set(NOT_SET_BY_THE_TEMPLATE) - read
    assert not stale, f"the code no longer reads {sorted(stale)}"


def test_every_setting_the_template_sets_is_read_by_the_code_or_the_host():
    read, written = settings_the_code_reads(), set(app_settings())
    unread = written - read - set(READ_BY_THE_HOST)
    assert not unread, f"the template sets {sorted(unread)}, which nothing reads (a typo?)"
    assert set(READ_BY_THE_HOST) <= written


def test_the_store_settings_follow_the_store_parameters():
    store = json.dumps(template("main.bicep")["variables"]["storeSettings"])
    for setting in ("DicomStore__Type", "DicomStore__DicomWebUrl", "DicomStore__Authentication", "DicomStore__ServiceUri"):
        assert setting in store
    assert '"DicomStore__Authentication": "managedIdentity"' in store
    app = unwrap(template("main.bicep")["modules"]["app"]["config"])
    assert "storeSettings" in json.dumps(app["params"]["exportSettings"])


def test_host_json_sends_the_durable_lifecycle_and_every_export_line_to_application_insights():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["logging"]["logLevel"]["Host.Triggers.DurableTask"] == "Information"
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert "Trace" in excluded, "sampled traces would drop export.* lines and the operators' queries would undercount"
