"""Who may read the petition register here: the node's user, root, and the petition staff.

The register holds the petitioner's personal data, so ``lienthong petitions`` (and the
petition page) check the caller's Unix identity before opening it: the owner of the node's
home (the node's user), root, or a member of ``[petitions] group`` (by the caller's own
group list, as the kernel gives it: ``getgroups``).
"""
from __future__ import annotations

import os

from lienthong.config.schema import NodeConfig
from lienthong.node.core.errors import NodeError
from lienthong.node.core.restricted import petition_access
from lienthong.node.language.text import Phrase


class NotPetitionStaff(NodeError):
    """The caller is not among those who may read citizens' petitions here."""

    code = "not-petition-staff"


def check_petition_staff(config: NodeConfig) -> None:
    """Raise NotPetitionStaff unless the calling process may read the register."""
    uid = os.geteuid()
    if uid == 0 or uid == os.stat(config.home).st_uid:
        return
    gid = petition_access(config.petitions.group).gid
    if gid is not None and (gid == os.getegid() or gid in os.getgroups()):
        return
    group = config.petitions.group
    raise NotPetitionStaff(
        Phrase("only the petition staff may read the petition register (members of the Unix "
               "group {group}); ask the administrator to add you to that group", group=group)
        if group else
        Phrase("only the petition staff may read the petition register (no [petitions] group "
               "is configured, so only the node's user); ask the administrator to add you to "
               "that group"))
