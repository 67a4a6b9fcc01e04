"""The `dicom-export` command line: bulk loader and export client over the service's HTTP API."""
