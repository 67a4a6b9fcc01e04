"""Domain code of the DICOM export service: plain Python over azure-storage-blob and pydicom.

Nothing here imports azure.functions; everything is testable against Azurite alone.
"""
