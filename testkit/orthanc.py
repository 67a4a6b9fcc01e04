"""Orthanc with its DICOMweb plugin (Debian's packages), run by hand for tests and benchmarks.

Its own JSON config: free loopback ports, storage in a temporary folder, HTTP authentication on,
and the plugin loaded by its file path (never the plugin folder, which may hold orthanc-gdcm and
change transcoding). Its DICOM port is a PACS for the DIMSE store: AE title `ORTHANC` checked on
every association, and the export's AE (`DICOM-EXPORT`) the one modality allowed C-FIND and C-GET,
never transcoded to. Ready when `/dicom-web/studies?limit=1` answers 200 while
the process lives. Instances are stored through STOW-RS as raw bytes (dicomweb-client would
re-encode them).
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devhost.azurite import free_port
from testkit.host import kill_group, refuse_under_test_fast, stop_group, wait_ready

EXECUTABLE = "/usr/sbin/Orthanc"
PLUGIN_PATTERN = "/usr/lib/orthanc/libOrthancDicomWeb.so*"
USER, PASSWORD = "exporter", "orthanc-test-password-3f9d"
AE_TITLE, EXPORT_AE_TITLE = "ORTHANC", "DICOM-EXPORT"


def plugin_path() -> str:
    found = sorted(glob.glob(PLUGIN_PATTERN))
    if not os.path.exists(EXECUTABLE) or not found:
        raise RuntimeError("Orthanc and its DICOMweb plugin are not installed (make install does it)")
    return found[-1]


@dataclass
class Orthanc:
    """One Orthanc process over `folder` (its storage survives a restart)."""

    folder: Path
    port: int = 0
    dicom_port: int = 0
    settings: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return USER, PASSWORD

    def app_settings(self) -> dict[str, str]:
        """The app settings that point the export at this Orthanc."""
        return {"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": self.dicomweb_url,
                "DicomStore__Authentication": "basic", "DicomStore__Username": USER, "DicomStore__Password": PASSWORD}

    def dimse_settings(self) -> dict[str, str]:
        """The app settings that point the export at this Orthanc's DICOM port."""
        return {"DicomStore__Type": "dimse", "DicomStore__Host": "127.0.0.1", "DicomStore__Port": str(self.dicom_port),
                "DicomStore__CalledAETitle": AE_TITLE}

    def start(self, timeout: float = 60) -> Orthanc:
        refuse_under_test_fast("Orthanc")
        self.port = self.port or free_port()
        self.dicom_port = self.dicom_port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "export-tests", "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"), "HttpPort": self.port, "HttpServerEnabled": True,
            "DicomServerEnabled": True, "DicomPort": self.dicom_port, "DicomAet": AE_TITLE,
            "DicomCheckCalledAet": True, "DicomAlwaysAllowFind": False, "DicomAlwaysAllowGet": False,
            "DicomModalities": {"export": {"AET": EXPORT_AE_TITLE, "Host": "127.0.0.1", "Port": 1, "AllowFind": True,
                                           "AllowGet": True, "AllowMove": False, "AllowTranscoding": False}},
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD}, "Plugins": [plugin_path()], "StorageCompression": False,
            "OverwriteInstances": True, "HttpCompressionEnabled": False, "LimitFindResults": 0,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            **self.settings,
        }
        (self.folder / "orthanc.json").write_text(json.dumps(config, indent=1))
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen([EXECUTABLE, str(self.folder / "orthanc.json")], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_ready(self.process, self._answering, "Orthanc", "answer", timeout, self.log, self.stop)
        return self

    def _answering(self) -> bool:
        r = requests.get(f"{self.dicomweb_url}/studies", params={"limit": 1}, auth=self.auth, timeout=2)
        return r.status_code == 200

    def kill(self) -> None:
        kill_group(self.process)

    def stop(self) -> None:
        stop_group(self.process, signal.SIGTERM, 20)

    def log(self) -> str:
        path = self.folder / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stow(self, *files: bytes) -> None:
        """Store each file's bytes unchanged through STOW-RS (one request per 20 files)."""
        for start in range(0, len(files), 20):
            boundary = uuid.uuid4().hex
            parts = [b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n" % (boundary.encode(), data)
                     for data in files[start:start + 20]]
            body = b"".join(parts) + b"--%s--\r\n" % boundary.encode()
            r = requests.post(f"{self.dicomweb_url}/studies", data=body, auth=self.auth, timeout=300, headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json"})
            failed = r.json().get("00081198", {}).get("Value") if r.status_code == 200 else r.text
            assert not failed, f"Orthanc refused {failed}"

    def clear(self) -> None:
        """Delete every study (Orthanc's REST API)."""
        for study in requests.get(f"{self.url}/studies", auth=self.auth, timeout=30).json():
            requests.delete(f"{self.url}/studies/{study}", auth=self.auth, timeout=30).raise_for_status()
