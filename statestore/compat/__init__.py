"""Adapters that let other systems' interfaces use a statestore store."""
