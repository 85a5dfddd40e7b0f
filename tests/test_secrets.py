"""No secret appears in any output format, whatever a probe or a plugin puts in its text."""

import json
import os
import subprocess
import sys

from conftest import build_demo_plugin_site
from llmdoctor.report.redact import redact

HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
OPENAI = "sk-proj-" + "q8W3e9R7t6Y5u4I3o2P1a0SdFgHjKl"
PROXY_PASSWORD = "s3cr3t-Pr0xy-pass"
SECRETS = (HF_TOKEN, OPENAI, PROXY_PASSWORD, "wandb-0123456789abcdef0123")

LEAKY_PLUGIN = '''
import os
from llmdoctor.model import Status, check

@check("leaky.echo")
def echo(facts, c):
    """A careless plugin that prints the environment."""
    yield c.finding(Status.WARN, "token " + os.environ.get("HF_TOKEN", ""),
                    detail="proxy " + os.environ.get("HTTPS_PROXY", "") + " key " + os.environ.get("OPENAI_API_KEY", ""),
                    fix="export WANDB_API_KEY=" + os.environ.get("WANDB_API_KEY", "") +
                        " && curl https://x.example/?token=" + os.environ.get("HF_TOKEN", ""))

def checks():
    return [echo]
'''


def test_redact_masks_named_variables_urls_and_token_shapes():
    env = {"HF_TOKEN": HF_TOKEN, "HTTPS_PROXY": f"http://alice:{PROXY_PASSWORD}@proxy.corp:8080"}
    text = redact(f"a {HF_TOKEN} b http://alice:{PROXY_PASSWORD}@proxy.corp:8080 c hf_{'x' * 30} d ?token=abc", env)
    for secret in (HF_TOKEN, PROXY_PASSWORD, "alice", "hf_" + "x" * 30, "token=abc"):
        assert secret not in text
    assert "http://***@proxy.corp:8080" in text


def test_every_output_format_is_free_of_secrets(tmp_path):
    site = build_demo_plugin_site(tmp_path, "llmdoctor_leaky", LEAKY_PLUGIN)
    env = dict(os.environ)
    env.update({
        "HF_TOKEN": HF_TOKEN, "OPENAI_API_KEY": OPENAI, "WANDB_API_KEY": "wandb-0123456789abcdef0123",
        "HTTPS_PROXY": f"http://alice:{PROXY_PASSWORD}@proxy.corp:8080",
        # the token also reaches the target's facts (sys.path) through PYTHONPATH
        "PYTHONPATH": os.pathsep.join([str(site), f"/tmp/{HF_TOKEN}"]),
    })
    outputs = {}
    for name, args in {
        "terminal": ["check", "--offline"],
        "verbose": ["check", "--offline", "-v"],
        "json": ["check", "--offline", "--json"],
        "markdown": ["report", "--offline"],
        "list": ["check", "--list", "--json"],
    }.items():
        run = subprocess.run([sys.executable, "-m", "llmdoctor", *args], capture_output=True, text=True,
                             env=env, timeout=120, cwd=tmp_path)
        outputs[name] = run.stdout + run.stderr
    assert "leaky.echo" in outputs["json"]  # the leaky plugin did run
    assert json.loads(outputs["json"])  # and redaction kept the JSON valid
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked in {name} output"
