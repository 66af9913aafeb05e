"""What people read about a model: its card, status, version diff, reproduction."""
