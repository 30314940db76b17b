"""Intake: envelope messages, the bus, the blob store, extraction and the pipeline stages."""
