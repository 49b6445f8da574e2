"""Typed errors for key material, signatures and peers.

Verification fails closed: every check raises one of these, never returns False.
"""


class KeysError(Exception):
    """Base class for every error raised by the keys package.

    A message a clerk may read is made as ``WrongPassphrase("... {path} ...", path=...)``:
    one English sentence with named fields (``template``, ``fields``), which the command line
    shows in the clerk's language (this layer cannot import the node's catalog). Without
    fields the message is used as it is.
    """

    def __init__(self, template: object = "", /, **fields: object) -> None:
        self.template = template if isinstance(template, str) else None
        self.fields = fields
        super().__init__(template.format(**fields) if fields and isinstance(template, str)
                         else template)


class MalformedToken(KeysError):
    """A signed object (JWS compact) could not be parsed at all."""


class WrongType(KeysError):
    """A signed object is valid JWS but of another kind than the caller expected."""


class BadSignature(KeysError):
    """The signature does not verify under the key it was checked with."""


class BadNodeID(KeysError):
    """A node ID is not well formed or its check characters do not match."""


class KeystoreError(KeysError):
    """The keystore file is missing, damaged or of an unknown version."""


class WrongPassphrase(KeystoreError):
    """The keystore exists and is intact as far as we can tell, but the passphrase does not open
    it."""


class InsecurePermissions(KeystoreError):
    """Key material is readable by group or others (refused, as ssh refuses such keys)."""


class BadCard(KeysError):
    """A peer card does not verify or does not match the node ID it claims."""


class UnknownPeer(KeysError):
    """A key or certificate does not belong to any trusted peer in the directory."""


class InvalidValue(KeysError):
    """A name, address or time stamp breaks its rule; the message says which rule and why."""


class BadCertificate(KeysError):
    """A TLS certificate cannot be parsed or does not follow lienthong's certificate profile."""


class BadBinding(KeysError):
    """A key binding (identity key vouching for encryption and TLS keys) is not acceptable."""


class DirectoryError(KeysError):
    """A peer directory would be inconsistent (duplicate name, node ID or TLS pin)."""


class DirectoryFileError(KeysError):
    """A directory file (cards vouched for by a coordinating office) cannot be used at all."""
