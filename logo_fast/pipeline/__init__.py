"""End-to-end jobs built from the library's public pieces."""
