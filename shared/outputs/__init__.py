"""Research outputs: transcoded DICOM, rendered PNG/JPEG frames and a metadata table (docs/OUTPUTS.md)."""
