"""Placeholder: this family lands in its own change."""
