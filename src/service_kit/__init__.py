"""What the three services share: settings, database, auth, errors, pagination, outbox, queue."""
