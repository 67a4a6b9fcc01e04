"""What tests, benchmarks and the demo share to run the real thing: the stack and its seeding.

- host.py: the local host as a subprocess (start, wait until Running, kill, restart), process helpers.
- orthanc.py: Orthanc with its DICOMweb plugin, as an external DICOMweb store.
- stack.py: Azurite plus hosts of the app in one temporary folder (benchmarks).
- seed.py: filling a store: a few instances through the store, or 10⁵ straight into its container.
- exporting.py: export requests and their results through `cli.api.Api` and the destination container.
- instances.py, corpus.py: DICOM files made for tests; crashes.py: killing a host at a point of an export.
- shipped.py: the DICOM files pydicom's wheel ships, found by globbing (research outputs' tests and bench).

Development only: it is not installed and the app never imports it.
"""
