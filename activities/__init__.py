"""Durable activities: thin adapters from the runtime's JSON to the steps in `shared/`."""
