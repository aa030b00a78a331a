"""The built wheel is a bridge that can reply: templates, the trained model and the stand-ins' data ship inside it.

Builds a wheel from a copy of the sources (the work tree gets no build/ or egg-info), installs it
without dependencies into a private folder and, from a folder that has no templates/, renders
every reply through the installed package — the dev venv provides only the dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bridge.mail.compose import TEMPLATE_NAMES, TEMPLATE_PARTS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

RENDER = """
import json, sys
import bridge
from bridge.mail.compose import TEMPLATE_NAMES, Composer, MessageKind
from bridge.mail.parse import parse_email
from bridge.sandbox.hr import SEED_FILE

raw = (b"From: Alice <alice@customer.example>\\r\\nTo: support@example.com\\r\\nSubject: Cannot log in\\r\\n"
       b"Message-ID: <m1@customer.example>\\r\\n\\r\\nHelp\\r\\n")
composer = Composer("", from_address="support@example.com", from_name="Support", domain="example.com",
                    secret=b"k" * 32, tag_prefix="HD-")
values = {"reply_text": "Try again now.", "agent_name": "Agent"}  # what agent_reply needs
subjects = {name: composer.reply(parse_email(raw), 7, template=name, kind=MessageKind.AUTOMATION_OUTCOME,
                                 values=values).subject
            for name in TEMPLATE_NAMES}
from bridge.automation.classify import ClassifierConfig
from bridge.automation.intent import IntentClassifier, IntentConfig, PACKAGED_MODEL
intent = IntentClassifier(ClassifierConfig(), IntentConfig())
score = intent.classify("Locked out", "I can't log in to Moodle, it says my account is locked.").score
print(json.dumps({"package": bridge.__file__, "subjects": subjects, "seed": SEED_FILE.is_file(),
                  "model": str(PACKAGED_MODEL), "score": score}))
"""


def test_installed_wheel_renders_every_reply(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "bridge", source / "bridge", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)],
                   check=True, timeout=300, cwd=tmp_path)
    [wheel] = dist.glob("bridge-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    for template in TEMPLATE_NAMES:
        for part in TEMPLATE_PARTS:
            assert f"bridge/templates/{template}.{part}.j2" in names
    assert "bridge/sandbox/directory.yaml" in names
    assert "bridge/models/login_intent.json.gz" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, timeout=300, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", RENDER], check=True, timeout=120, cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    result = json.loads(out.stdout)
    assert Path(result["package"]).is_relative_to(site), result["package"]  # not the work tree
    assert result["seed"]
    assert Path(result["model"]).is_relative_to(site) and 0.0 <= result["score"] <= 1.0
    assert set(result["subjects"]) == set(TEMPLATE_NAMES)
    assert all(subject.endswith("[#HD-7]") for subject in result["subjects"].values()), result["subjects"]
