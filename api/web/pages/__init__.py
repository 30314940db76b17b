"""Workbench pages, one module per area; each is a thin layer over the services the REST API uses."""
