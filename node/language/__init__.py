"""What a clerk reads, in the clerk's language: gettext catalogs, names, dates (docs/web.md)."""
