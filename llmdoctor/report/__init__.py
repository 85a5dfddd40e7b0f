"""The report and what prints it: envelope (the versioned JSON document, --replay's input),
render (terminal, JSON, Markdown), printable (control characters made visible), redact
(secrets masked)."""
