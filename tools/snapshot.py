"""Every output a user sees of convoscope on the demo brand, one file each, for comparing two versions
when a change must not change behaviour (issue 24 point 6): the demo's CSVs, every report from the command
line and the API (CSV, JSON) under several parameter sets and errors, the POST dialect, entities, the
pages logged in, the OpenAPI document and the audit log.

    PYTHONPATH=<tree>/src CONVOSCOPE_ASSETS=node_modules .venv/bin/python tools/snapshot.py OUTDIR

then tools/compare_snapshots.py BEFORE AFTER (see its --help)."""
import json, os, re, subprocess, sys, time, csv, shutil
from pathlib import Path
from urllib.parse import urlencode
import httpx

OUT = Path(sys.argv[1]).resolve()
if OUT.exists() and any(OUT.iterdir()):
    sys.exit(f"{OUT} is not empty")
OUT.mkdir(parents=True, exist_ok=True)
WORK = Path(f"/tmp/snapwork-{os.getpid()}")
shutil.rmtree(WORK, ignore_errors=True); WORK.mkdir()
PORT = 8765
PY = sys.executable
CMD = [PY, "-c", "import sys; from convoscope.cli import main; sys.argv[0] = 'convoscope'; main()"]
ENV = dict(os.environ, CONVOSCOPE_PORT=str(PORT))
ENV.pop("CONVOSCOPE_DB", None)
AS_OF = "2026-06-02T00:00:00Z"
DB = WORK / "demo" / "demo.duckdb"
CFG = WORK / "convoscope.toml"

def save(name, data):
    p = OUT / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if isinstance(data, bytes) else data.encode())

def cli(*args, stdin=None):
    r = subprocess.run(CMD + [ "--db", str(DB), "--config", str(CFG), *args],
                       input=stdin, capture_output=True, env=ENV, cwd=WORK)
    return r.returncode, r.stdout, r.stderr

# 1. the demo itself: its printed headline and every CSV it writes
r = subprocess.run(CMD + [ "demo", "--out", str(WORK / "demo"), "--no-serve", "--port", str(PORT)],
                   capture_output=True, env=ENV, cwd=WORK)
save("demo/stdout.txt", r.stdout); save("demo/rc.txt", str(r.returncode))
for f in sorted((WORK / "demo").glob("*.csv")):
    save(f"demo/{f.name}", f.read_bytes())
print("demo done", flush=True)
CFG.write_text(f'public_url = "http://127.0.0.1:{PORT}"\n')

from convoscope import reports as R  # noqa: E402 (the version under test)
NAMES = list(R.REPORTS)
save("report_names.txt", "\n".join(NAMES))

# 2. command line: every report under several parameter sets, and its errors
VARIANTS = {
    "plain": [],
    "tz": ["--tz", "America/New_York", "--from", "2026-05-03", "--to", "2026-05-20"],
    "snake_extra": ["--headers", "snake", "--extra"],
    "period_week": ["--period", "week"],
    "period_month": ["--period", "month", "--tz", "Europe/Berlin"],
    "by_channel": ["--by", "channel"],
    "by_guide": ["--by", "guide"],
    "where_chat": ["--where", "channel=chat"],
    "brand_x": ["--brand", "nosuch"],
}
for name in NAMES:
    for v, extra in VARIANTS.items():
        rc, out, err = cli("report", name, "--as-of", AS_OF, *extra)
        save(f"cli/{name}/{v}.csv", out); save(f"cli/{name}/{v}.err", err + f"\nrc={rc}".encode())
print("cli reports done", flush=True)
ERRORS = {
    "bad_asof": ["report", "sessions-summary", "--as-of", "yesterday"],
    "bad_from": ["report", "sessions-summary", "--from", "2026-13-01"],
    "bad_tz": ["report", "sessions-summary", "--tz", "Mars/Olympus"],
    "bad_period": ["report", "sessions-summary", "--period", "fortnight"],
    "bad_by": ["report", "sessions-summary", "--by", "colour"],
    "bad_where": ["report", "sessions-detail", "--where", "colour=red"],
    "bad_where_value": ["report", "sessions-detail", "--where", "channel=pigeon"],
    "bad_where_form": ["report", "sessions-detail", "--where", "channel"],
    "from_after_to": ["report", "sessions-summary", "--from", "2026-05-10", "--to", "2026-05-01"],
    "unknown_report": ["report", "nosuch"],
    "period_on_detail": ["report", "sessions-detail", "--period", "week"],
    "help": ["--help"], "report_help": ["report", "--help"], "ingest_help": ["ingest", "--help"],
    "users_help": ["users", "--help"], "serve_help": ["serve", "--help"], "pull_help": ["pull", "chatwoot", "--help"],
    "ingest_missing": ["ingest", "/nonexistent.jsonl"],
    "rejects": ["rejects"],
}
for key, args in ERRORS.items():
    rc, out, err = cli(*args)
    save(f"cli_errors/{key}.txt", out + b"\n--stderr--\n" + err + f"\nrc={rc}".encode())
rc, out, err = cli("users", "add", "admin", "--role", "administrator", "--password-stdin", stdin=b"correct horse battery\n")
save("cli_misc/users_add.txt", out + err)
rc, out, err = cli("users", "add", "ana", "--role", "analyst", "--password-stdin", stdin=b"correct horse battery\n")
rc, token, err = cli("users", "token", "admin"); token = token.decode().strip()
rc, token2, err = cli("users", "token", "ana"); token2 = token2.decode().strip()
rc, out, err = cli("users", "list"); save("cli_misc/users_list.txt", out + err)
print("cli errors done", flush=True)

# 3. the server
srv = subprocess.Popen(CMD + [ "--db", str(DB), "--config", str(CFG), "serve", "--port", str(PORT)],
                       env=ENV, cwd=WORK, stdout=open(WORK / "serve.log", "wb"), stderr=subprocess.STDOUT)
base = f"http://127.0.0.1:{PORT}"
for _ in range(300):
    try:
        httpx.get(base + "/login", timeout=1); break
    except Exception:
        if srv.poll() is not None:
            sys.exit("serve stopped: " + (WORK / "serve.log").read_text())
        time.sleep(0.2)
H = {"Authorization": f"Bearer {token}"}
SKIP_HEADERS = {"date", "server", "content-length", "set-cookie", "x-request-id"}

def answer(r):
    hdrs = {k: v for k, v in sorted(r.headers.items()) if k.lower() not in SKIP_HEADERS}
    return (f"status={r.status_code}\n" + "".join(f"{k}: {v}\n" for k, v in hdrs.items()) + "\n").encode() + r.content

try:
    c = httpx.Client(base_url=base, timeout=600)
    QV = {"plain": {}, "tz": {"tz": "America/New_York", "from": "2026-05-03", "to": "2026-05-20"},
          "snake_extra": {"headers": "snake", "extra": "true"}, "period_week": {"period": "week"},
          "by_channel": {"by": "channel"}, "where_chat": {"where": "channel=chat"}}
    for name in NAMES:
        for v, q in QV.items():
            q = dict(q, as_of=AS_OF)
            save(f"api/{name}/{v}.csv.txt", answer(c.get(f"/api/v1/reports/{name}", params=q, headers=H)))
            save(f"api/{name}/{v}.json.txt", answer(c.get(f"/api/v1/reports/{name}", params=q,
                                                          headers=H | {"Accept": "application/json"})))
    print("api reports done", flush=True)
    API_ERR = {
        "bad_asof": ("/api/v1/reports/sessions-summary", {"as_of": "yesterday"}),
        "bad_tz": ("/api/v1/reports/sessions-summary", {"tz": "Mars/Olympus"}),
        "bad_where": ("/api/v1/reports/sessions-detail", {"where": "colour=red"}),
        "bad_where_value": ("/api/v1/reports/sessions-detail", {"where": "channel=pigeon"}),
        "bad_period": ("/api/v1/reports/sessions-summary", {"period": "fortnight"}),
        "bad_by": ("/api/v1/reports/sessions-summary", {"by": "colour"}),
        "unknown_param": ("/api/v1/reports/sessions-summary", {"colour": "red"}),
        "unknown_report": ("/api/v1/reports/nosuch", {}),
        "from_after_to": ("/api/v1/reports/sessions-summary", {"from": "2026-05-10", "to": "2026-05-01"}),
    }
    for k, (path, q) in API_ERR.items():
        save(f"api_errors/{k}.txt", answer(c.get(path, params=q, headers=H)))
    save("api_errors/no_token.txt", answer(c.get("/api/v1/reports/sessions-summary")))
    save("api_errors/analyst_messages.txt", answer(c.get("/api/v1/reports/sessions-detail-with-messages",
         params={"as_of": AS_OF}, headers={"Authorization": f"Bearer {token2}"})))
    POSTS = {
        "contact_export": {"metricSet": "ContactExportReport", "startAt": "2026-05-01", "endAt": "2026-05-31",
                           "timezone": "UTC"},
        "conversation_export": {"metricSet": "ConversationExportReport", "startAt": "2026-05-01",
                                "endAt": "2026-05-15", "timezone": "America/New_York"},
        "sessions_summary": {"metricSet": "sessions-summary", "startAt": "2026-05-01", "endAt": "2026-05-31",
                             "aggregationLevel": "week"},
        "ai_detail": {"metricSet": "GladlyAISessionsDetailReport", "startAt": "2026-05-01", "endAt": "2026-05-05",
                      "filters": {"channel": "chat"}},
        "contact_summary": {"metricSet": "ContactSummaryReport", "startAt": "2026-05-01", "endAt": "2026-05-31"},
        "bad_start": {"metricSet": "ContactExportReport", "startAt": "May 1", "endAt": "2026-05-31"},
        "unknown_metric": {"metricSet": "AgentDurationsReport", "startAt": "2026-05-01", "endAt": "2026-05-31"},
        "extra_field": {"metricSet": "ContactExportReport", "startAt": "2026-05-01", "endAt": "2026-05-31",
                        "colour": "red"},
        "no_range": {"metricSet": "sessions-summary"},
    }
    for k, body in POSTS.items():
        save(f"api_post/{k}.txt", answer(c.post("/api/v1/reports", json=body, headers=H)))
    # entities: a few ids of each kind from the demo's CSVs
    def ids(fname, col, n=4):
        with open(WORK / "demo" / fname, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [r[col] for r in rows[:: max(1, len(rows) // n)][:n]]
    sess = ids("sessions-detail.csv", "Session ID"); cons = ids("contact-export.csv", "Contact ID")
    convs = ids("conversation-export.csv", "Conversation ID")
    for s in sess + ["nosuch"]:
        save(f"entities/session-{s}.txt", answer(c.get(f"/api/v1/sessions/{s}", headers=H)))
    for s in cons + ["nosuch"]:
        save(f"entities/contact-{s}.txt", answer(c.get(f"/api/v1/contacts/{s}", headers=H)))
    for s in convs + ["nosuch"]:
        save(f"entities/conversation-{s}.txt", answer(c.get(f"/api/v1/conversations/{s}", headers=H)))
    save("api_misc/openapi.json", answer(c.get("/api/v1/openapi.json")))
    save("api_misc/docs.html", answer(c.get("/api/docs")))
    save("api_misc/events_bad.txt", answer(c.post("/api/v1/events", content=b'{"not": "an event"}\n',
                                                  headers=H | {"Content-Type": "application/x-ndjson"})))
    print("api done", flush=True)
    # pages, logged in with the cookie
    p = httpx.Client(base_url=base, timeout=600, follow_redirects=False)
    login = p.get("/login")
    save("pages/login.html", answer(login))
    csrf = re.search(rb'name="csrf" value="([^"]+)"', login.content).group(1).decode()
    r = p.post("/login", data={"name": "admin", "password": "correct horse battery", "csrf": csrf, "next": "/"})
    save("pages/login_post.txt", f"{r.status_code} {r.headers.get('location')}")
    PAGES = ["/", "/dashboard", "/dashboard?period=week", "/dashboard?tz=America/New_York&from=2026-05-03&to=2026-05-20",
             "/reports", "/conversations", f"/conversations?customer=nosuch", "/users", "/static/app.css",
             "/static/dashboard.js", "/reports/nosuch", "/conversations/nosuch"]
    for name in NAMES:
        PAGES += [f"/reports/{name}", f"/reports/{name}?run=1&from=2026-05-01&to=2026-05-31",
                  f"/reports/{name}?run=1&tz=Mars/Olympus", f"/reports/{name}?run=1&period=fortnight",
                  f"/reports/{name}?run=1&where=colour%3Dred&by=channel"]
    PAGES += [f"/conversations/{x}" for x in convs]
    for path in PAGES:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", path.strip("/")) or "root"
        save(f"pages/{safe}.html", answer(p.get(path)))
    save("pages/audit.html", answer(p.get("/audit")))
    print("pages done", flush=True)
finally:
    srv.terminate(); srv.wait(30)
rc, out, err = cli("audit"); save("cli_misc/audit.txt", out + err + f"\nrc={rc}".encode())
print("snapshot written to", OUT)
