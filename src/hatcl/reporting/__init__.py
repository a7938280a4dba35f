"""Run folders, console summaries, tables and figures."""
