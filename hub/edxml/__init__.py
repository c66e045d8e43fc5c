"""The edXML package model: parse (hardened), read, build, sign, verify, validate. Pure, no I/O."""
