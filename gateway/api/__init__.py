"""The control API: REST/JSON under /_loxo/api/v1 (see docs/api.md)."""
