"""A local Azure Functions host for Python v2 apps with Durable Functions, for machines without Core Tools."""
