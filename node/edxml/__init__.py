"""edXML (QCVN 102:2016/BTTTT): the message format of the offices' document-management systems,
read into lienthong's document metadata and written back out (docs/edxml.md)."""
