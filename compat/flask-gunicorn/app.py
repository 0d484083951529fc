"""A small Flask app: JSON, templates, sqlite and time zones, the way apps use them."""

import hashlib
import sqlite3
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import Flask, jsonify, render_template_string, request

app = Flask(__name__)

PAGE = "<!doctype html><title>{{ title }}</title><h1>Hello, {{ name }}!</h1>"


@app.get("/")
def index():
    return render_template_string(PAGE, title="compat", name=request.args.get("name", "world"))


@app.get("/api/info")
def info():
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x integer)")
    db.executemany("insert into t values (?)", [(i,) for i in range(10)])
    (total,) = db.execute("select sum(x) from t").fetchone()
    noon = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).astimezone(ZoneInfo("Europe/Paris"))
    return jsonify(
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        sqlite_sum=total,
        paris=noon.isoformat(),
        sha256=hashlib.sha256(b"kiln").hexdigest(),
    )


@app.post("/api/echo")
def echo():
    return jsonify(received=request.get_json(force=True))
