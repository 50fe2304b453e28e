"""The comparison report: the records it reads, its summaries, tables, notes, figures and sections, and the
document writer (Markdown and a self-contained HTML page)."""
