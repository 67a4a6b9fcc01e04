"""The export: request, destination, checkpoint, the expand and copy steps, errors.log and the operation view."""
