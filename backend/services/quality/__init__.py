"""Quality control: agreement, per-annotator accuracy and bias, aggregation, review."""
