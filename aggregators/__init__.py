"""Per-worker aggregators: one event loop owns each buffer; batches go to Postgres, then Valkey."""
