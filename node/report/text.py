"""Every sentence and label of the yearly report, in Vietnamese and English.

One literal per message, with named ``{fields}``, keyed by a message name, so the table can
move into the project's gettext catalog as it is (the Vietnamese text is the clerks'; English
is for ``--lang en``). The template (templates/report.html.j2) calls ``t("name", field=...)``
and never builds a sentence from fragments.
"""
from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("vi", "en")

MESSAGES: Mapping[str, Mapping[str, str]] = {
    "title": {
        "vi": "Báo cáo kết quả phối hợp năm {year}",
        "en": "Cooperation report for {year}",
    },
    "subtitle": {
        "vi": "Số liệu của {office}, lập ngày {date}, theo hồ sơ của chính cơ quan này.",
        "en": "Figures of {office}, drawn up on {date}, from this office's own records.",
    },
    "scope": {
        "vi": "Mỗi văn bản được tính vào tháng nơi gửi lập phong bì (thời điểm có chữ ký, "
              "giờ Việt Nam). Hai cơ quan có cùng số liệu về những văn bản trao đổi giữa họ.",
        "en": "Each document counts in the month its sender created its envelope (the signed "
              "time, Vietnam time). Two offices give the same figures for the documents they "
              "exchanged.",
    },
    "summary": {"vi": "Tóm tắt", "en": "Summary"},
    "summary_line": {
        "vi": "{office} đã gửi {sent} và nhận {received} văn bản trong năm {year}; "
              "{receipted} văn bản gửi đi đã có biên nhận có chữ ký.",
        "en": "{office} sent {sent} and received {received} documents in {year}; "
              "{receipted} of those sent came back with a signed receipt.",
    },
    "volume": {"vi": "Văn bản gửi và nhận", "en": "Documents sent and received"},
    "volume_chart": {"vi": "Số văn bản mỗi tháng, theo cơ quan gửi",
                     "en": "Documents per month, by sending office"},
    "documents": {"vi": "Văn bản", "en": "Documents"},
    "pair": {"vi": "Từ → đến", "en": "From → to"},
    "total": {"vi": "Tổng", "en": "Total"},
    "receipted": {"vi": "Có biên nhận", "en": "Receipted"},
    "by_type": {"vi": "Theo loại văn bản", "en": "By type of document"},
    "by_month": {"vi": "Theo tháng", "en": "By month"},
    "type": {"vi": "Loại", "en": "Type"},
    "month_short": {"vi": "T{month}", "en": "{month}"},
    "obligations": {"vi": "Chương trình và văn bản có hạn",
                    "en": "Programmes and documents with a deadline"},
    "obligations_chart": {"vi": "Nghĩa vụ đến hạn trong năm, theo cơ quan",
                          "en": "Obligations due in the year, by office"},
    "obligations_note": {
        "vi": "Chương trình công tác gửi Văn phòng Tỉnh ủy theo hạn của quy chế, văn bản có "
              "hạn xử lý và kết luận cần vào sổ, có hạn trong năm; tình trạng tính đến ngày "
              "lập báo cáo. Tỷ lệ đúng hạn = đúng hạn / (đúng hạn + trễ hạn + không có).",
        "en": "Work programmes owed to the consolidating office by the regulation's deadlines, "
              "documents with a processing deadline and conclusions to register, due in the "
              "year; states as of the day of the report. On-time rate = on time / (on time + "
              "late + missing).",
    },
    "obligations_none": {"vi": "Không có nghĩa vụ nào đến hạn trong năm {year}.",
                         "en": "No obligation was due in {year}."},
    "office": {"vi": "Cơ quan", "en": "Office"},
    "count": {"vi": "Số lượng", "en": "Count"},
    "rate": {"vi": "Tỷ lệ đúng hạn", "en": "On-time rate"},
    "state_on-time": {"vi": "Đúng hạn", "en": "On time"},
    "state_late": {"vi": "Trễ hạn", "en": "Late"},
    "state_missing": {"vi": "Không có", "en": "Missing"},
    "state_overdue": {"vi": "Quá hạn", "en": "Overdue"},
    "state_due": {"vi": "Chưa đến hạn", "en": "Not yet due"},
    "not_on_time": {"vi": "Nghĩa vụ không đúng hạn", "en": "Obligations not met on time"},
    "kind": {"vi": "Loại", "en": "Kind"},
    "period": {"vi": "Kỳ", "en": "Period"},
    "due": {"vi": "Hạn", "en": "Due"},
    "done_at": {"vi": "Nhận/hoàn thành lúc", "en": "Received or done at"},
    "state": {"vi": "Tình trạng", "en": "State"},
    "latency": {"vi": "Thời gian chuyển và xử lý", "en": "Delivery and processing times"},
    "latency_chart": {"vi": "Thời gian từ lúc gửi đến biên nhận có chữ ký",
                      "en": "Time from dispatch to signed receipt"},
    "latency_note": {
        "vi": "Thời gian chuyển: từ lúc nơi gửi lập phong bì đến thời điểm trên biên nhận "
              "của nơi nhận. Thời gian xử lý: từ biên nhận đến trạng thái \"hoàn thành\" "
              "do nơi nhận ký. Trung vị và phân vị 95.",
        "en": "Delivery: from the sender creating the envelope to the time on the recipient's "
              "receipt. Processing: from the receipt to the \"completed\" status the recipient "
              "signed. Median and 95th percentile.",
    },
    "median": {"vi": "Trung vị", "en": "Median"},
    "p95": {"vi": "Phân vị 95", "en": "95th percentile"},
    "delivery": {"vi": "Chuyển", "en": "Delivery"},
    "processing": {"vi": "Xử lý", "en": "Processing"},
    "completed": {"vi": "Đã hoàn thành", "en": "Completed"},
    "bucket_0": {"vi": "< 1 phút", "en": "< 1 min"},
    "bucket_1": {"vi": "1–10 phút", "en": "1–10 min"},
    "bucket_2": {"vi": "10–60 phút", "en": "10–60 min"},
    "bucket_3": {"vi": "1–4 giờ", "en": "1–4 h"},
    "bucket_4": {"vi": "4–24 giờ", "en": "4–24 h"},
    "bucket_5": {"vi": "> 1 ngày", "en": "> 1 day"},
    "recalls": {"vi": "Thu hồi", "en": "Recalls"},
    "recalls_none": {"vi": "Không có văn bản nào bị thu hồi.", "en": "No document was recalled."},
    "failures": {"vi": "Từ chối và lỗi", "en": "Refusals and failures"},
    "failures_none": {"vi": "Không có văn bản nào bị từ chối hoặc gửi lỗi.",
                      "en": "No document was refused or failed."},
    "time": {"vi": "Thời điểm", "en": "Time"},
    "sender": {"vi": "Nơi gửi", "en": "Sender"},
    "name": {"vi": "Tên tệp", "en": "File"},
    "reason": {"vi": "Lý do", "en": "Reason"},
    "outcome": {"vi": "Kết quả", "en": "Outcome"},
    "what": {"vi": "Loại", "en": "What"},
    "what_refused": {"vi": "Từ chối tại hộp gửi", "en": "Refused at the outbox"},
    "what_delivery": {"vi": "Gửi không thành", "en": "Delivery failed"},
    "review": {"vi": "Đối chiếu và nhân chứng", "en": "Reconciliation and witnesses"},
    "reconciliations": {"vi": "Kết quả đối chiếu", "en": "Reconciliation results"},
    "reconciliations_none": {"vi": "Chưa có lần đối chiếu nào cho năm {year}.",
                             "en": "No reconciliation was made for {year}."},
    "peer": {"vi": "Cơ quan đối chiếu", "en": "With office"},
    "differences": {"vi": "Số khác biệt", "en": "Differences"},
    "rec_agreed": {"vi": "Khớp", "en": "Agreed"},
    "rec_differs": {"vi": "Có khác biệt", "en": "Differs"},
    "rec_pending": {"vi": "Đang chờ", "en": "Pending"},
    "rec_requested": {"vi": "Đã yêu cầu", "en": "Requested"},
    "witnesses": {"vi": "Đầu chuỗi nhật ký được làm chứng", "en": "Witnessed audit heads"},
    "witnesses_note": {
        "vi": "Số đầu chuỗi nhật ký kiểm toán của cơ quan này được cơ quan khác ký làm "
              "chứng trong năm, và số đầu chuỗi của cơ quan khác mà cơ quan này giữ.",
        "en": "How many heads of this office's audit log each other office witnessed in the "
              "year, and how many of that office's heads this office holds.",
    },
    "witnesses_none": {"vi": "Không có đầu chuỗi nào được trao đổi trong năm {year}.",
                       "en": "No audit head was exchanged in {year}."},
    "ours_witnessed": {"vi": "Của ta được làm chứng", "en": "Ours witnessed"},
    "theirs_held": {"vi": "Của họ ta giữ", "en": "Theirs we hold"},
    "latest": {"vi": "Gần nhất", "en": "Latest"},
    "none": {"vi": "—", "en": "—"},
    "footer": {
        "vi": "Lập bằng lienthong. Mọi số liệu đọc từ hồ sơ của {office}; cách tính: "
              "docs/review.md.",
        "en": "Made by lienthong. Every figure is read from the records of {office}; how each "
              "is computed: docs/review.md.",
    },
    "seconds": {"vi": "{value} giây", "en": "{value} s"},
    "minutes": {"vi": "{value} phút", "en": "{value} min"},
    "hours": {"vi": "{value} giờ", "en": "{value} h"},
    "days": {"vi": "{value} ngày", "en": "{value} days"},
    "type_resolution": {"vi": "Nghị quyết", "en": "Resolution"},
    "type_decision": {"vi": "Quyết định", "en": "Decision"},
    "type_directive": {"vi": "Chỉ thị", "en": "Directive"},
    "type_report": {"vi": "Báo cáo", "en": "Report"},
    "type_programme": {"vi": "Chương trình", "en": "Programme"},
    "type_conclusion": {"vi": "Kết luận", "en": "Conclusion"},
    "type_announcement": {"vi": "Thông báo", "en": "Announcement"},
    "type_publication": {"vi": "Ấn phẩm", "en": "Publication"},
    "type_letter": {"vi": "Công văn", "en": "Letter"},
    "type_other": {"vi": "Khác", "en": "Other"},
    "type_message": {"vi": "Tin nhắn", "en": "Message"},
    "kind_annual": {"vi": "Chương trình năm", "en": "Annual programme"},
    "kind_quarterly": {"vi": "Chương trình quý", "en": "Quarterly programme"},
    "kind_monthly": {"vi": "Chương trình tháng", "en": "Monthly programme"},
    "kind_weekly": {"vi": "Chương trình tuần", "en": "Weekly programme"},
    "kind_document": {"vi": "Văn bản có hạn", "en": "Document with a deadline"},
    "kind_conclusion": {"vi": "Kết luận", "en": "Conclusion"},
}


def wording(lang: str, name: str, **fields: object) -> str:
    """The message ``name`` in ``lang`` with its fields filled in."""
    return MESSAGES[name][lang].format(**fields)
