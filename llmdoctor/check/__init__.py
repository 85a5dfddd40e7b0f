"""The check flow: runner (probes and checks under deadlines, crashes as findings) and flow
(diagnose this machine, or replay a saved report)."""
