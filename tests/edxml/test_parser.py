"""Attack corpus for the one hardened XML entry point."""

from __future__ import annotations

import pytest

from hub.edxml.parser import parse_xml
from hub.errors import ParseError

NS = b'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"'

CORPUS = {
    "xxe_file": (b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]><edXML ' + NS + b">&x;</edXML>", "parse.doctype"),
    "xxe_network": (b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]><edXML ' + NS + b">&x;</edXML>", "parse.doctype"),
    "external_dtd": (b'<!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/edxml.dtd"><edXML ' + NS + b"/>", "parse.doctype"),
    "parameter_entity": (b'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><edXML ' + NS + b"/>", "parse.doctype"),
    "billion_laughs": (b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                       b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><edXML ' + NS + b">&c;</edXML>", "parse.doctype"),
    "doctype_after_long_comment": (b"<!--" + b"x" * 8000 + b'--><!DOCTYPE edXML [<!ENTITY x "y">]><edXML ' + NS + b">&x;</edXML>", "parse.doctype"),
    "xinclude": (b'<edXML ' + NS + b' xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></edXML>', "parse.xinclude"),
    "not_xml": (b"\x89PNG\r\n\x1a\n", "parse.not_xml"),
    "empty": (b"", "parse.not_xml"),
    "truncated": (b"<edXML " + NS + b"><edXMLEnvelope>", "parse.not_xml"),
    "wrong_root": (b"<html><body/></html>", "parse.not_edxml"),
    "wrong_namespace": (b'<edXML xmlns="urn:other"/>', "parse.not_edxml"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_attack_corpus_refused(name):
    data, code = CORPUS[name]
    with pytest.raises(ParseError) as e:
        parse_xml(data)
    assert e.value.code == code, e.value.message


def test_size_cap_checked_before_parsing():
    data = b"<edXML " + NS + b">" + b" " * 2000 + b"</edXML>"
    with pytest.raises(ParseError) as e:
        parse_xml(data, max_bytes=1000)
    assert e.value.code == "parse.too_large"
    assert parse_xml(data, max_bytes=len(data)).tag.endswith("edXML")


def test_utf8_bom_and_declaration_accepted():
    root = parse_xml(b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><edXML " + NS + b"/>")
    assert root.tag == "{http://www.mic.gov.vn/TBT/QCVN_102_2016}edXML"


@pytest.mark.parametrize("data, element, preview", [
    (b"1212<?xml version='1.0' encoding='UTF-8'?><edXML " + NS + b"/>", "XML declaration", "'1212'"),
    (b"\r\n<?xml version='1.0'?><edXML " + NS + b"/>", "XML declaration", "'\\r\\n'"),
    (b"junk<edXML " + NS + b"/>", "edXML", "'junk'"),
])
def test_bytes_before_the_declaration_are_named(data, element, preview):
    with pytest.raises(ParseError) as e:
        parse_xml(data)
    assert e.value.code == "parse.not_xml" and e.value.element == element
    assert preview in e.value.message and "byte(s) before" in e.value.message


def test_whitespace_before_a_root_without_declaration_is_xml():
    assert parse_xml(b"\n  <edXML " + NS + b"/>").tag.endswith("edXML")
