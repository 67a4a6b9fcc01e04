"""Durable orchestrators: generator functions that read like the business process."""
