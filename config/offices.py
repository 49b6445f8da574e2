"""The three offices of the first deployment, used by ``lienthong demo`` and as examples."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Office:
    name: str
    display_name: str
    english_name: str


OFFICES: tuple[Office, ...] = (
    Office("tinhuy", "Văn phòng Tỉnh ủy", "Provincial Party Committee Office"),
    Office("hdnd", "Văn phòng Đoàn ĐBQH và HĐND tỉnh",
           "Office of the National Assembly Delegation and People's Council"),
    Office("ubnd", "Văn phòng UBND tỉnh", "Provincial People's Committee Office"),
)
