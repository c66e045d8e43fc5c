"""Deadline follow-up (đôn đốc): which recipients have not finished a document by its DueDate."""
