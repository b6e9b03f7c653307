"""The built-in synthetic multi-domain benchmark."""
