"""A citizens' petition's metadata: checked strictly, sealed-only fields, opaque names, and
refusal reasons that never repeat what the clerk typed (they reach the audit log)."""
from __future__ import annotations

import pytest

from lienthong.node.documents.metadata import document_meta, parse_sidecar
from lienthong.node.documents.metadata_error import MetadataError
from lienthong.node.documents.petitions import (
    PetitionError,
    check_petition_peers,
    opaque_file_name,
    petition_reference,
    public_meta,
    read_petition,
)

NAME = "Lê Văn Tám"
SIDECAR = f"""\
type = "Đơn thư"
loai_don = "tố cáo"
so_don = "7/ĐTC"
ngay_nhan = "02/12/2026"
hinh_thuc_nhan = "qua bưu điện"
nguoi_viet_don = "{NAME}"
dia_chi = "Số 5, phố Hàng Bông"
so_cccd = "001099000111"
trich_yeu = "Tố cáo hành vi nhận hối lộ"
co_quan_giai_quyet = "UBND"
don_lien_quan = ["3/ĐTC"]
""".encode()
MID = "0123456789abcdef0123456789abcdef"


def meta_of(text: bytes, hint: str | None = None):  # type: ignore[no-untyped-def]
    return document_meta(parse_sidecar(text), hint=hint)


def test_a_petition_sidecar_becomes_a_sealed_petition_object() -> None:
    meta = meta_of(SIDECAR)
    envelope = meta.as_envelope_meta()
    assert envelope["kind"] == "petition" and "subject" not in envelope
    assert envelope["petition"] == {
        "kind": "denunciation", "number": "7/ĐTC", "received": "2026-12-02",
        "channel": "post", "subject": "Tố cáo hành vi nhận hối lộ",
        "petitioner": {"name": NAME, "address": "Số 5, phố Hàng Bông",
                       "id_number": "001099000111"},
        "handling_office": "ubnd", "related": ["3/ĐTC"]}
    assert read_petition(envelope) == envelope["petition"]


def test_the_folder_don_thu_makes_a_petition_and_it_needs_its_fields() -> None:
    with pytest.raises(MetadataError) as caught:
        document_meta({}, hint="don-thu")
    assert caught.value.code == "bad-petition" and caught.value.petition
    assert "petitioner" in caught.value.reason


@pytest.mark.parametrize(("drop", "field"), [
    (f'nguoi_viet_don = "{NAME}"\n', "petitioner"), ('ngay_nhan = "02/12/2026"\n', "received")])
def test_petitioner_and_received_date_are_required(drop: str, field: str) -> None:
    with pytest.raises(MetadataError) as caught:
        meta_of(SIDECAR.decode().replace(drop, "").encode())
    assert caught.value.reason.startswith(f"{field}: a petition must give")


@pytest.mark.parametrize("value", ["<b>Lê Văn Tám</b>", "Lê Văn\u202eTám", "Lê\\u0007 Văn Tám"])
def test_markup_and_control_characters_are_refused_without_repeating_the_value(
        value: str) -> None:
    with pytest.raises(MetadataError) as caught:
        meta_of(SIDECAR.decode().replace(NAME, value).encode())
    assert caught.value.code == "bad-petition" and caught.value.petition
    assert caught.value.reason.startswith("petitioner:")
    assert "Tám" not in caught.value.reason and "Văn" not in caught.value.reason


def test_fields_of_other_documents_are_refused_on_a_petition_and_the_reverse() -> None:
    with pytest.raises(MetadataError, match="number: a citizens' petition does not carry"):
        meta_of(SIDECAR + b'number = "12-NQ/TU"\n')
    with pytest.raises(MetadataError, match="only a citizens' petition"):
        meta_of(b'type = "report"\nnguoi_viet_don = "A"\n')


def test_bad_id_number_channel_and_office_are_named() -> None:
    for old, new, field in (("001099000111", "12", "petitioner_id"),
                            ("qua bưu điện", "bồ câu", "channel"),
                            ('"UBND"', '"UBND/tỉnh"', "handling_office")):
        with pytest.raises(MetadataError) as caught:
            meta_of(SIDECAR.decode().replace(old, new).encode())
        assert caught.value.reason.startswith(f"{field}:"), caught.value.reason


def test_a_peers_petition_object_is_checked_as_strictly() -> None:
    good = meta_of(SIDECAR).as_envelope_meta()
    with pytest.raises(PetitionError, match="does not know"):
        read_petition(dict(good, petition=dict(good["petition"], extra="x")))
    with pytest.raises(PetitionError, match="carries no petition"):
        read_petition({"kind": "petition"})
    bad = dict(good["petition"], subject="<script>alert(1)</script>")
    with pytest.raises(PetitionError, match="subject"):
        read_petition(dict(good, petition=bad))
    with pytest.raises(PetitionError, match="file_name"):
        read_petition(dict(good, petition=dict(good["petition"], file_name="../x.pdf")))


def test_outside_the_restricted_places_a_petition_is_only_its_reference() -> None:
    meta = meta_of(SIDECAR).as_envelope_meta()
    shown = public_meta(meta, MID)
    assert shown == {"kind": "petition", "urgency": "normal", "confidentiality": "normal",
                     "priority": 3, "petition_ref": "petition-0123456789ab"}
    assert NAME not in repr(shown)
    assert public_meta({"kind": "document", "subject": "S"}, MID) == {"kind": "document",
                                                                      "subject": "S"}
    assert petition_reference(MID) == "petition-0123456789ab"
    assert opaque_file_name(MID, "Đơn của Lê Văn Tám.PDF") == "petition-0123456789ab.pdf"
    assert opaque_file_name(MID, "Đơn của Lê Văn Tám") == "petition-0123456789ab"
    assert opaque_file_name(MID, "đơn.tên dài quá mức") == "petition-0123456789ab"


def test_petitions_go_only_to_peers_allowed_by_name_or_group() -> None:
    check_petition_peers(["hdnd", "ubnd"], peers=["council"],
                         groups={"council": ("hdnd", "ubnd")})
    with pytest.raises(PetitionError) as caught:
        check_petition_peers(["hdnd", "tinhuy"], peers=["hdnd"], groups={})
    assert caught.value.code == "petition-not-allowed" and "to tinhuy" in caught.value.reason
