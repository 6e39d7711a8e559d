"""First-party plugins, one folder each (DESIGN.md §1)."""
