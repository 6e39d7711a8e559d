"""The client-facing APIs: each module validates its requests and registers its routes."""
