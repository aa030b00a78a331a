"""The durable per-email job pipeline and the outbox of side effects."""
