"""Inter-agency edXML document interchange hub."""

__version__ = "0.1.0"
