"""Any DICOMweb server as the export's store: QIDO-RS to list, WADO-RS (streamed multipart) to read."""
