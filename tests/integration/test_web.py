"""The web pages in a real browser (Debian's Chromium through Playwright) against real nodes.

Two offices run as real processes; tinhuy sends hdnd a resolution whose subject is hostile
HTML. The tests then drive the pages as a clerk would: every page renders with data (and
passes axe with no serious violation), search finds the document by number, hdnd's clerk
registers it and tinhuy's page shows it, an upload through the form is delivered and
receipted, the hostile subject is text, a POST without the CSRF token is refused, and wrong
passwords on the remote (HTTPS) listener are throttled. Screenshots of every page go to
build/web-screenshots/.
"""
from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lienthong.node.cli.main import main
from tests.browser import browser  # noqa: F401 - the session's Chromium
from tests.integration.harness import TestNode, free_port, make_network, sidecar, wait_for

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "web-screenshots"
HOSTILE = "<img src=x onerror=alert(1)> </script><script>alert(2)</script> Nghị quyết"
NUMBER = "12-NQ/TU"
PASSWORD = "mat-khau-dung-1234"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "web-cert.pem", folder / "web-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def address(node: TestNode) -> str:
    path = node.home / "state" / "status.port"
    wait_for(path.exists, timeout=15, what=f"{node.name}'s status port file")
    return "http://" + path.read_text().strip()


@pytest.fixture(scope="module")
def offices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("web")
    remote_port = free_port()
    cert, key = _certificate(base / "tls")
    nodes = make_network(base, ["tinhuy", "hdnd"], language="vi")
    config = nodes["hdnd"].home / "lienthong.toml"
    config.write_text(config.read_text().replace(
        "[web]\n", f'[web]\nremote_listen = "127.0.0.1:{remote_port}"\n'
                   f'certificate = "{cert}"\nprivate_key = "{key}"\n'
                   'remote_hosts = ["localhost"]\n') + '\n[petitions]\nweb_users = ["donthu"]\n')
    # tinhuy follows the browser's language (docs/web.md); hdnd keeps the default.
    tinhuy_config = nodes["tinhuy"].home / "lienthong.toml"
    tinhuy_config.write_text(tinhuy_config.read_text().replace(
        "follow_browser_language = false", "follow_browser_language = true"))
    for user, role in (("vanthu", "clerk"), ("donthu", "viewer")):
        result = CliRunner().invoke(main, ["web", "user", "add", user, "--role", role,
                                           "--home", str(nodes["hdnd"].home)],
                                    env={"LIENTHONG_WEB_PASSWORD": PASSWORD,
                                         "LIENTHONG_WEB_FAST_HASH": "1"})
        assert result.exit_code == 0, result.output
    for node in nodes.values():
        node.start()
    tinhuy, hdnd = nodes["tinhuy"], nodes["hdnd"]
    (tinhuy.outbox / "hdnd").mkdir(parents=True, exist_ok=True)
    (tinhuy.outbox / "hdnd" / "nq12.txt.meta.toml").write_text(
        f'type = "resolution"\nnumber = {json.dumps(NUMBER)}\nsubject = {json.dumps(HOSTILE)}\n'
        'urgency = "flash"\nsigner = "Nguyễn Văn A"\n', encoding="utf-8")
    tinhuy.drop("hdnd", "nq12.txt", "Nội dung nghị quyết\n".encode())
    wait_for(lambda: (hdnd.inbox / "tinhuy" / "nq12.txt.receipt.jws").exists(), timeout=60,
             what="the delivery")
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield {"nodes": nodes, "remote": f"https://localhost:{remote_port}"}
    for node in nodes.values():
        node.stop()


def page_of(browser: Any, **options: Any) -> Any:  # noqa: F811
    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768},
                                  **options)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    return page


def message_id(node: TestNode, name: str) -> str:
    meta = sidecar(node.inbox / "tinhuy" / name)
    return str(json.loads(meta.read_text())["message_id"])


def test_every_page_renders_with_data_and_passes_axe(offices: dict[str, Any],
                                                     browser: Any) -> None:  # noqa: F811
    """Each page answers 200 in Vietnamese with the office's data, has no serious axe
    violation, and is screenshotted (office screen and phone)."""
    from axe_playwright_python.sync_playwright import Axe
    hdnd = offices["nodes"]["hdnd"]
    base = address(hdnd)
    mid = message_id(hdnd, "nq12.txt")
    page = page_of(browser)
    axe = Axe()
    expected = {"/": "Tổng quan", "/documents": NUMBER, f"/documents/{mid}": "Hỏa tốc",
                "/send": "Gửi văn bản", "/peers": "Mã xác minh", "/audit": "Nhật ký kiểm toán",
                "/deadlines": "Thời hạn", "/report": "Báo cáo năm"}
    for path, text in expected.items():
        answer = page.goto(base + path)
        assert answer.status == 200, path
        assert text in page.content(), path
        results = axe.run(page)
        serious = [v for v in results.response["violations"]
                   if v["impact"] in ("serious", "critical")]
        assert serious == [], (path, [(v["id"], v["nodes"][0]["html"]) for v in serious])
        name = path.strip("/").replace("/", "-")[:20] or "overview"
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    # The petition page is for signed-in petition staff only (docs/petitions.md §5): the
    # loopback session, which any user of the machine can open, gets a refusal, no link.
    answer = page.goto(base + "/petitions")
    assert answer.status == 403 and "Chỉ cán bộ xử lý đơn thư" in page.content()
    page.errors.remove("Failed to load resource: the server responded with a status of 403 "
                       "(Forbidden)")  # that refusal itself, as the browser's console says
    page.goto(base + "/")
    assert page.locator("a[href='/petitions']").count() == 0
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/documents")
    page.screenshot(path=str(SHOTS / "documents-phone.png"), full_page=True)
    assert page.errors == [] and page.dialogs == []


def test_search_finds_a_document_by_number(offices: dict[str, Any],
                                           browser: Any) -> None:  # noqa: F811
    page = page_of(browser)
    page.goto(address(offices["nodes"]["tinhuy"]) + "/documents")
    page.fill("#q-number", "12-NQ")
    page.click("form.search button[type=submit]")
    rows = page.locator("#documents tbody tr")
    assert rows.count() == 1 and NUMBER in rows.first.inner_text()
    page.fill("#q-number", "99-XX")
    page.click("form.search button[type=submit]")
    assert "Không có văn bản phù hợp" in page.locator("#documents").inner_text()


def test_a_status_marked_by_the_clerk_shows_at_the_sender(offices: dict[str, Any],
                                                          browser: Any) -> None:  # noqa: F811
    tinhuy, hdnd = offices["nodes"]["tinhuy"], offices["nodes"]["hdnd"]
    mid = message_id(hdnd, "nq12.txt")
    page = page_of(browser)
    page.goto(address(hdnd) + f"/documents/{mid}")
    page.select_option("#status", "registered")
    page.fill("#register_number", "152/VP")
    page.click("form.mark button[type=submit]")
    assert "Đã vào sổ" in page.locator("p.notice").inner_text()
    sender = page_of(browser)

    def shown() -> bool:
        sender.goto(address(tinhuy) + f"/documents/{mid}")
        return "số đến 152/VP" in sender.locator("#recipients").inner_text()
    wait_for(shown, timeout=30, what="the status at the sender", interval=1.0)
    assert "Đã vào sổ" in sender.locator("#recipients").inner_text()
    page.screenshot(path=str(SHOTS / "document-marked.png"), full_page=True)


def test_an_upload_is_delivered_and_receipted(offices: dict[str, Any], tmp_path: Path,
                                              browser: Any) -> None:  # noqa: F811
    tinhuy, hdnd = offices["nodes"]["tinhuy"], offices["nodes"]["hdnd"]
    upload = tmp_path / "bao-cao-quy-4.txt"
    upload.write_text("Báo cáo quý IV\n", encoding="utf-8")
    page = page_of(browser)
    page.goto(address(tinhuy) + "/send")
    page.select_option("#to", "hdnd")
    page.set_input_files("#file", str(upload))
    page.select_option("#type", "report")
    page.fill("#number", "45-BC/TU")
    page.select_option("#urgency", "urgent")
    page.fill("#subject", "Báo cáo tình hình quý IV")
    page.fill("#signer", "Trần Thị B")
    page.fill("#due", "2026-12-31")
    page.click("form[action='/send/document'] button[type=submit]")
    assert "bao-cao-quy-4.txt" in page.locator("p.notice").inner_text()
    wait_for(lambda: (hdnd.inbox / "tinhuy" / "bao-cao-quy-4.txt").exists(), timeout=60,
             what="the uploaded document at hdnd")
    meta = json.loads(sidecar(hdnd.inbox / "tinhuy" / "bao-cao-quy-4.txt").read_text())
    assert meta["meta"]["number"] == "45-BC/TU" and meta["meta"]["due"] == "2026-12-31"

    def receipted() -> bool:
        page.goto(address(tinhuy) + "/documents?number=45-BC")
        return "1/1" in page.locator("#documents").inner_text()
    wait_for(receipted, timeout=30, what="the receipt on the sender's page", interval=1.0)
    assert not list((tinhuy.home / "tmp" / "web-uploads").iterdir())


def test_a_hostile_subject_is_text_and_runs_nothing(offices: dict[str, Any],
                                                    browser: Any) -> None:  # noqa: F811
    hdnd = offices["nodes"]["hdnd"]
    mid = message_id(hdnd, "nq12.txt")
    page = page_of(browser)
    for path in ("/documents", f"/documents/{mid}", "/"):
        page.goto(address(hdnd) + path)
        if path != "/":
            assert HOSTILE in page.locator("main").inner_text()
        assert page.locator("img[src=x]").count() == 0
    page.wait_for_timeout(2500)  # a live refresh has run
    assert page.dialogs == [] and page.errors == []


def test_a_post_without_the_csrf_token_is_refused(offices: dict[str, Any]) -> None:
    hdnd = offices["nodes"]["hdnd"]
    mid = message_id(hdnd, "nq12.txt")
    body = urllib.parse.urlencode({"status": "completed"}).encode()
    request = urllib.request.Request(address(hdnd) + f"/documents/{mid}/mark", data=body)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=10)
    assert refused.value.code == 403
    # The refusal is audited as the page is answered; other tests' refusals are there too.
    wait_for(lambda: any('"why":"csrf"' in entry.detail_json
                         for entry in hdnd.query("audit_entries", kind="web-refused")),
             timeout=10, what="the CSRF refusal in the audit log")


def test_a_remote_clerk_signs_in_and_a_cookie_is_strict(offices: dict[str, Any],
                                                       browser: Any) -> None:  # noqa: F811
    page = page_of(browser, ignore_https_errors=True)
    remote = offices["remote"]
    page.goto(remote + "/login")
    cookie = page.context.cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"]
    page.fill("#user", "vanthu")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    page.goto(remote + "/documents")
    assert NUMBER in page.content() and "văn thư" in page.content()
    page.screenshot(path=str(SHOTS / "remote-documents.png"), full_page=True)


def test_only_a_petition_staff_account_sees_the_petition_page(
        offices: dict[str, Any], browser: Any) -> None:  # noqa: F811
    """[petitions] web_users names donthu: signed in, donthu sees the register (with the link
    in the menu); vanthu, a clerk but not petition staff, is refused."""
    from axe_playwright_python.sync_playwright import Axe
    remote = offices["remote"]
    seen = {}
    for user in ("donthu", "vanthu"):
        page = page_of(browser, ignore_https_errors=True)
        page.goto(remote + "/login")
        page.fill("#user", user)
        page.fill("#password", PASSWORD)
        page.click("form.login button[type=submit]")
        links = page.locator("a[href='/petitions']").count()
        answer = page.goto(remote + "/petitions")
        seen[user] = (answer.status, links, "Sổ theo dõi đơn chưa có đơn nào" in page.content())
        if user == "donthu":
            violations = [v for v in Axe().run(page).response["violations"]
                          if v["impact"] in ("serious", "critical")]
            assert violations == []
    assert seen == {"donthu": (200, 1, True), "vanthu": (403, 0, False)}


def test_wrong_remote_passwords_are_rate_limited(offices: dict[str, Any],
                                                 browser: Any) -> None:  # noqa: F811
    page = page_of(browser, ignore_https_errors=True)
    remote = offices["remote"]
    answer = page.goto(remote + "/documents")
    assert page.url.endswith("/login") and answer.status == 200
    codes = []
    for _ in range(6):
        page.goto(remote + "/login")
        page.fill("#user", "vanthu")
        page.fill("#password", "sai-mat-khau-000")
        with page.expect_response(lambda r: r.url.endswith("/login")
                                  and r.request.method == "POST") as info:
            page.click("form.login button[type=submit]")
        codes.append(info.value.status)
    assert codes == [401] * 5 + [429]
    page.goto(remote + "/login")
    page.fill("#user", "vanthu")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    assert "Đăng nhập sai quá nhiều lần" in page.content()
    page.screenshot(path=str(SHOTS / "login-throttled.png"))
    hdnd = offices["nodes"]["hdnd"]
    outcomes = [json.loads(e.detail_json)["outcome"]
                for e in hdnd.query("audit_entries", kind="web-login")]
    assert outcomes.count("failed") == 5 and "throttled" in outcomes


def test_an_english_browser_gets_the_offices_language_until_the_clerk_chooses(
        offices: dict[str, Any], browser: Any) -> None:  # noqa: F811
    """An en-US Chromium (as many office PCs are) gets the office's language, Vietnamese;
    the page's "English" button switches it (its cookie wins over everything); the browser's
    Accept-Language counts only where [web] follow_browser_language = true (tinhuy here)."""
    hdnd, tinhuy = offices["nodes"]["hdnd"], offices["nodes"]["tinhuy"]
    context = browser.new_context(locale="en-US", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(address(hdnd) + "/documents")
    assert page.evaluate("navigator.language") == "en-US"
    assert page.locator("html").get_attribute("lang") == "vi"
    assert "Văn bản" in page.content() and "Chưa vào sổ" in page.content()
    page.locator("form.language button[value=en]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Overview" in page.content() and "Tổng quan" not in page.content()
    page.goto(address(hdnd) + "/documents")
    assert "Not yet registered" in page.content() and "Chưa vào sổ" not in page.content()
    page.locator("form.language button[value=vi]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "vi"
    context.close()
    following = browser.new_context(locale="en-US")
    page = following.new_page()
    page.goto(address(tinhuy) + "/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Overview" in page.content()
    following.close()


def test_the_yearly_report_renders_with_data_passes_axe_and_keeps_peer_text_inert(
        offices: dict[str, Any], browser: Any) -> None:  # noqa: F811
    """hdnd's report of this year: the resolution it received, a refused file whose name and
    type are hostile HTML (shown as text), the charts drawn under the strict CSP (a refused
    inline style would be a console error), no serious axe violation, the HTML file to
    download, the PDF or a sentence saying why not, and each request in the audit log."""
    from axe_playwright_python.sync_playwright import Axe
    hdnd = offices["nodes"]["hdnd"]
    hostile_name = "<img src=x onerror=alert(3)>.txt"
    (hdnd.outbox / "tinhuy").mkdir(parents=True, exist_ok=True)
    (hdnd.outbox / "tinhuy" / f"{hostile_name}.meta.toml").write_text(
        'type = "<script>alert(4)</script>"\n', encoding="utf-8")
    hdnd.drop("tinhuy", hostile_name, b"x\n")
    wait_for(lambda: any(json.loads(e.detail_json).get("name") == hostile_name
                         for e in hdnd.query("audit_entries", kind="refused")),
             timeout=30, what="the refusal of the hostile file")
    year = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).year
    page = page_of(browser)
    answer = page.goto(address(hdnd) + f"/report?year={year}")
    assert answer.status == 200
    main = page.locator("main").inner_text()
    assert f"Báo cáo kết quả phối hợp năm {year}" in main
    assert page.locator("#report tr[data-pair='tinhuy-hdnd']").count() == 1
    assert page.locator("#report figure svg").count() >= 2  # volume and latency charts
    assert hostile_name in main and "<script>alert(4)</script>" in main
    assert page.locator("img[src=x]").count() == 0 and page.locator("#report script").count() == 0
    # the report's own style applies (served as /static/report.css, not inline)
    assert page.locator("#report h2").first.evaluate(
        "h => getComputedStyle(h).color") == "rgb(31, 78, 121)"
    results = Axe().run(page)
    serious = [v for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]
    assert serious == [], [(v["id"], v["nodes"][0]["html"]) for v in serious]
    page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    with page.expect_download() as download:
        page.locator(f"a[href='/report/{year}.html']").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert saved.startswith("<!DOCTYPE html>") and "<style>" in saved
    assert "&lt;img src=x onerror=alert(3)&gt;.txt" in saved
    pdf_link = page.locator(f"a[href='/report/{year}.pdf']")
    if pdf_link.count():
        with page.expect_download() as download:
            pdf_link.click()
        assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    else:
        assert "không có Chromium hoặc Playwright" in main
    assert page.errors == [] and page.dialogs == []
    formats = [json.loads(e.detail_json)["format"]
               for e in hdnd.query("audit_entries", kind="web-action")
               if json.loads(e.detail_json).get("action") == "report"]
    assert "page" in formats and "html" in formats
