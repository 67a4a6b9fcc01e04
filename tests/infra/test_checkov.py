"""checkov's Bicep checks over infra/: zero failures, zero files it could not parse, and exactly the skips
below, each with its reason written beside the resource (`// checkov:skip=ID:reason`).

checkov runs from .venv-infra (requirements-infra.txt; `make install` builds it): its pins clash with pytest's.
It takes about 15 s here. `--skip-download` keeps it offline (it would fetch guidelines otherwise).
"""

from __future__ import annotations

import json
import subprocess

from tests.infra.bicep import INFRA, ROOT

CHECKOV = ROOT / ".venv-infra" / "bin" / "checkov"

# Every check skipped, and why in short (the full reason is the inline comment checkov reads).
SKIPPED = {
    ("CKV_AZURE_131", "main.bicep"): "the @secure seeds' default is fresh randomness (newGuid), not a fixed value",
    ("CKV_AZURE_35", "modules/storage.bicep"): "Deny only with vnetEnabled: a Flex app without a network has shared addresses",
    ("CKV_AZURE_206", "modules/storage.bicep"): "ZRS; geo-replicating a task hub does not make it recoverable",
    ("CKV_AZURE_225", "modules/app.bicep"): "Flex zone redundancy exists only in some regions",
    ("CKV_AZURE_222", "modules/app.bicep"): "the API is called by clients over the internet, with function keys",
    ("CKV_AZURE_17", "modules/app.bicep"): "clients authenticate with function keys, not certificates",
    ("CKV_AZURE_212", "modules/app.bicep"): "Flex scales on demand; always-ready instances cost while idle",
    ("CKV_AZURE_213", "modules/app.bicep"): "no App Service health check on Flex Consumption",
    ("CKV_AZURE_109", "modules/keyvault.bicep"): "Deny only with vnetEnabled, as for storage",
    ("CKV_AZURE_41", "modules/keyvault-secrets.bicep"): "a key must outlive its exports and pseudonyms; rotation is deliberate",
}


def test_checkov_passes_every_bicep_check_it_does_not_skip_for_a_stated_reason():
    assert CHECKOV.exists(), "checkov is missing: run `make install` (it builds .venv-infra)"
    run = subprocess.run([str(CHECKOV), "--directory", str(INFRA), "--framework", "bicep", "--skip-download",
                          "--output", "json"], check=False, capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0, f"checkov could not parse some .bicep (so checked nothing there): {run.stderr[-2000:]}"
    assert summary["resource_count"] >= 40, summary
    failed = [f"{c['check_id']} {c['check_name']} {c['file_path']} {c['resource']}" for c in results["failed_checks"]]
    assert failed == []
    skipped = {(c["check_id"], c["file_path"].lstrip("/")): c["check_result"].get("suppress_comment", "")
               for c in results["skipped_checks"]}
    assert set(skipped) == set(SKIPPED), "a skip was added or removed: list it in SKIPPED with its reason"
    assert all(len(reason) > 40 for reason in skipped.values()), skipped
    assert run.returncode == 0
