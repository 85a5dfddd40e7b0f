"""The Hugging Face caches: scan (the fast read-only scan), index (what `cache ls` remembers
between listings), prune (policy, plan, safe deletion), nofollow (deleting without following a
link), view (what `cache ls` and `cache prune` print)."""
