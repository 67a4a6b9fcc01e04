"""The DICOM stores an export reads from."""
