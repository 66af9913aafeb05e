"""State by role: the home (where each store lives), registry (the only MLflow client
user), audit trail, rollouts, inference log, snapshots, notifier."""
