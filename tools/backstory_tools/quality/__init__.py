"""Quality measurement: the exact metrics of the evaluation sets (see ``docs/quality.md``)."""
