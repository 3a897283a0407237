"""Settings: a bad value stops start-up naming the variable; production settings pass
`check --deploy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

ROOT = Path(__file__).resolve().parents[2]
SETUP = ("import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'heliox_site.settings'); "
         "django.setup()")


def _run(tmp_path: Path, args: list[str], **overrides: str) -> subprocess.CompletedProcess[str]:
    # The test run's own settings (pyproject's env, CI's URLs) must not leak into the child.
    env = {k: v for k, v in os.environ.items() if k not in (
        "DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "API_KEY_PEPPER", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT")}
    env.update({"HELIOX_VAR_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "static"), **overrides})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("variable, value", [
    ("DEBUG", "ture"),
    ("RATELIMIT_ON_STORE_ERROR", "sometimes"),
    ("TRUSTED_PROXIES", "10.0.0.1/8"),
    ("DATABASE_URL", "mysql://root@localhost/heliox"),
    ("REDIS_SOCKET_TIMEOUT", "abc"),
    ("UPSTREAM_POOL_SIZE", "0"),
    ("REDIS_URL", "http://localhost:6379"),
])
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = _run(tmp_path, ["-c", SETUP], **{"DEBUG": "true", variable: value})
    assert result.returncode != 0
    assert f"{variable}=" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize("missing", ["SECRET_KEY", "API_KEY_PEPPER"])
def test_production_refuses_to_start_without_its_secrets(tmp_path: Path, missing: str) -> None:
    env = {"DEBUG": "false", "SECRET_KEY": "s" * 50, "API_KEY_PEPPER": "p" * 32}
    del env[missing]
    result = _run(tmp_path, ["-c", SETUP], **env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_good_settings_start(tmp_path: Path) -> None:
    result = _run(tmp_path, ["-c", SETUP + "; from django.conf import settings; print(settings.EMBEDDED)"],
                  DEBUG="true", TRUSTED_PROXIES="10.0.0.0/8, 192.168.0.0/16")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = _run(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                  DEBUG="false", SECRET_KEY=get_random_secret_key(),
                  API_KEY_PEPPER="x", ALLOWED_HOSTS="gw.example.com")
    assert result.returncode == 0, result.stdout + result.stderr



def test_with_the_database_down_the_apis_answer_503_fast(tmp_path: Path) -> None:
    """DESIGN.md §4: admin and portal writes fail fast with 503 while PostgreSQL is down."""
    script = SETUP + """
import json
from django.test import Client
client = Client(HTTP_X_ADMIN_KEY="k" * 20)
for answer in (client.get("/admin/api/tenants"),
               client.post("/admin/api/tenants", {"name": "x"}, content_type="application/json")):
    print(answer.status_code, answer.content.decode())
"""
    result = _run(tmp_path, ["-c", script], DEBUG="true", ADMIN_API_KEYS="k" * 20, DATABASE_POOL_TIMEOUT="0.5",
                  DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing-listens-here")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stderr
    for line in lines:
        status, body = line.split(" ", 1)
        assert status == "503" and json.loads(body)["error"] == "unavailable"
        assert "Traceback" not in body
