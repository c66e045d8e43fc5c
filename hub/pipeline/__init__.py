"""The ordered checks as small steps with reason codes, and the worker that runs them."""
