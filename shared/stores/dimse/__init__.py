"""A PACS reached by classic DICOM networking as the store: C-FIND to list, C-GET to read (pynetdicom)."""
