"""The DIMSE tests share the session's Orthanc (its DICOM port as the PACS) and the DICOMweb tests' files."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import ipaddress
import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil
import pydicom
import requests
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian

from testkit.orthanc import Orthanc
from tests.orthanc.conftest import orthanc  # noqa: F401 - the session's Orthanc, shared with tests/orthanc

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def after_meta(data: bytes) -> bytes:
    """The bytes after the File Meta group: the dataset as encoded."""
    stream = io.BytesIO(data)
    stream.seek(132)
    _read_file_meta_info(stream)
    return data[stream.tell():]


def assert_as_stored(got: bytes, stored: bytes, what: str) -> bool:
    """`got` is the instance `stored` as the PACS sent it: the same transfer syntax, SOP class and instance, pixel
    bytes and elements. Orthanc's DICOM sender (DCMTK) re-encodes undefined-length sequences with explicit lengths
    and drops trailing padding; True when the bytes after the meta group are identical too."""
    sent, original = pydicom.dcmread(io.BytesIO(got)), pydicom.dcmread(io.BytesIO(stored))
    assert sent.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, what
    assert sent.file_meta.MediaStorageSOPClassUID == original.SOPClassUID, what
    assert sent.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID, what
    assert sent.get("PixelData") == original.get("PixelData"), what
    original.pop(0xFFFCFFFC, None)
    assert list(sent) == list(original), what
    return after_meta(got) == after_meta(stored)


def pacs_connections(pacs: Orthanc, pid: int | None = None) -> int:
    """Established TCP connections to the PACS's DICOM port from process `pid` (default: this one) and its children."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    found = 0
    for process in processes:
        try:
            found += sum(1 for c in process.net_connections(kind="tcp")
                         if c.raddr and c.raddr.port == pacs.dicom_port and c.status == psutil.CONN_ESTABLISHED)
        except psutil.NoSuchProcess:
            pass
    return found


def write_large_instance(path: Path, frames: int, study: str, series: str, sop: str) -> int:
    """A multi-frame 16-bit 1024×1024 CT of `frames` frames (2 MiB each) written to `path` a frame at a time; its
    size. Explicit VR Little Endian with defined lengths, so the PACS sends its dataset byte for byte."""
    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
    ds.PatientName, ds.PatientID = "Large^Instance", "LARGE-1"
    ds.Rows = ds.Columns = 1024
    ds.NumberOfFrames, ds.SamplesPerPixel, ds.PhotometricInterpretation = frames, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, sop
    frame = 1024 * 1024 * 2
    with path.open("wb") as out:
        ds.save_as(out, enforce_file_format=True)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, frame * frames))
        pattern = os.urandom(frame)
        for n in range(frames):
            out.write(pattern[n % 997:] + pattern[: n % 997])  # every frame different, cheaply
    return path.stat().st_size


def stow_file(pacs: Orthanc, path: Path) -> None:
    """STOW-RS one file from disk, streamed (the test never holds it whole)."""
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        with path.open("rb") as data:
            while block := data.read(4 * 1024 * 1024):
                yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    r = requests.post(f"{pacs.dicomweb_url}/studies", data=body(), auth=pacs.auth, timeout=600, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text[:500]


def tree_rss(pid: int) -> int:
    """Resident memory of process `pid` and its children, in bytes."""
    root = psutil.Process(pid)
    total = 0
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


def dataset_digest(chunks: Iterable[bytes]) -> str:
    """SHA-256 of a file's bytes after its File Meta group, read a chunk at a time."""
    digest, head = hashlib.sha256(), b""
    for chunk in chunks:
        if head is not None:
            head += chunk
            if len(head) < 65536:
                continue
            chunk, head = after_meta(head), None
        digest.update(chunk)
    if head is not None:
        digest.update(after_meta(head))
    return digest.hexdigest()


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, all PEM files in `folder`:
    {"ca", "server_cert", "server_key", "client_cert", "client_key"}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(name: str, key, issuer_name, issuer_key, ca: bool, san: list | None = None):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(name: str, cert, key) -> None:
        (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                                               serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "export tests CA")])
    ca = issue("export tests CA", ca_key, ca_name, ca_key, ca=True)
    write("ca", ca, ca_key)
    for name, san in (("server", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, issue(name, key, ca_name, ca_key, ca=False, san=san), key)
    return {"ca": folder / "ca.crt", "server_cert": folder / "server.crt", "server_key": folder / "server.key",
            "client_cert": folder / "client.crt", "client_key": folder / "client.key"}
