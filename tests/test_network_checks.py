"""Network checks and the --ssl plan, by situation, from facts (what the probes recorded)."""

from __future__ import annotations

import os

from checks_under_test import network
from factories import dist, facts, findings_of, target
from llmdoctor.fix.model import FixContext
from llmdoctor.model import Status
from llmdoctor.net import EndpointResult, Phase
from llmdoctor.probes import ProbeContext
from llmdoctor.probes.network import CondaSetting, HubCall, NetConfigFacts, NetworkFacts, PipSetting, read_pip_config
from llmdoctor.target import resolve_target
from llmdoctor.report.shells import fix_text

OK_PHASES = (Phase("dns", True, 0.01), Phase("tcp", True, 0.02), Phase("tls", True, 0.05), Phase("http", True, 0.1))
HUB_OK = EndpointResult("hub", "https://huggingface.co", "huggingface.co", 443, OK_PHASES, status=200,
                        headers={"x-repo-commit": "607a30d783dfa663caf39e06633721c8d4cfcd7e", "etag": '"abc"'},
                        hub_headers=True, server_date="2026-11-26T10:00:00+00:00",
                        local_date="2026-11-26T10:00:02+00:00")


def net_facts(*results, call=None, **kw):
    return NetworkFacts(endpoint="https://huggingface.co", endpoint_from="default", repo="openai-community/gpt2",
                        results=tuple(results) or (HUB_OK,), hub_call=call or HubCall(ok=True, version="2.4.0",
                                                                                     client="httpx2"), **kw)


def insecure(t, cfg=NetConfigFacts()):
    return {f.id: f for f in findings_of(network.insecure_check, facts(target=t, netconfig=cfg))}


def test_empty_curl_ca_bundle_still_switches_verification_off_under_requests_2_27():
    fs = insecure(target(net_env={"CURL_CA_BUNDLE": ""}, distributions=(dist("requests", "2.27.1"),)))
    f = fs["network.empty-ca-bundle"]
    assert f.status is Status.FAIL and "requests 2.27.1 (< 2.28) takes that as 'verify nothing'" in f.title
    assert fix_text(f).startswith("llmdoctor fix --ssl")


def test_empty_curl_ca_bundle_under_a_current_requests_is_a_warning():
    fs = insecure(target(net_env={"CURL_CA_BUNDLE": "''"}, distributions=(dist("requests", "2.32.4"),)))
    assert fs["network.empty-ca-bundle"].status is Status.WARN


def test_an_empty_requests_ca_bundle_under_requests_2_27_is_not_said_to_be_ignored_by_2_28():
    """requests reads REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE: an empty REQUESTS_CA_BUNDLE falls
    through in every version (here to CURL_CA_BUNDLE's bundle, or certifi's). The finding must
    not call 2.27.1 ">= 2.28", and it says verification is on, as network.hub-client does."""
    for env, how in (({"REQUESTS_CA_BUNDLE": ""}, "certifi's bundle"),
                     ({"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/etc/ssl/ca.pem"}, "CURL_CA_BUNDLE=/etc/ssl/ca.pem")):
        fs = insecure(target(net_env=env, distributions=(dist("requests", "2.27.1"),)))
        f = fs["network.empty-ca-bundle"]
        assert ">= 2.28" not in f.title and "verification is on" in f.title and how in f.title, f.title
        assert dict(f.claims) == {"tls-verification:requests": "on"}


def test_pip_trusted_host_and_conda_ssl_verify_false():
    cfg = NetConfigFacts(pip=(PipSetting("/home/u/.config/pip/pip.conf", trusted_host="pypi.org files.pythonhosted.org"),),
                         conda=(CondaSetting("/home/u/.condarc", "false"),))
    fs = insecure(target(), cfg)
    assert fix_text(fs["network.pip-trusted-host"]).startswith(
        "/home/u/.venvs/llm/bin/python -m pip config unset global.trusted-host")
    assert fix_text(fs["network.conda-ssl-verify"]) == "conda config --set ssl_verify truststore"


def test_hf_hub_offline_left_on():
    fs = insecure(target(net_env={"HF_HUB_OFFLINE": "1"}))
    assert fix_text(fs["network.offline-mode"]) == "unset HF_HUB_OFFLINE"


def test_a_ca_variable_naming_a_missing_file():
    fs = insecure(target(net_env={"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem"}, net_missing_files=("REQUESTS_CA_BUNDLE",)))
    assert fs["network.ca-var-missing-file"].status is Status.FAIL


def test_ssl_cert_file_does_not_reach_huggingface_hub_0x():
    t = target(net_env={"SSL_CERT_FILE": "/home/u/corp-bundle.pem"}, distributions=(dist("huggingface-hub", "0.36.0"),))
    f = insecure(t)["network.ca-var-ignored"]
    assert "reads REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE" in f.title and "(requests)" in f.title


def test_a_clean_environment_has_no_leftovers():
    (f,) = findings_of(network.insecure_check, facts(target=target(), netconfig=NetConfigFacts()))
    assert f.status is Status.OK


def test_an_https_proxy_url_for_a_plain_proxy():
    fs = findings_of(network.proxy_check, facts(target=target(net_env={"HTTPS_PROXY": "https://***@proxy.corp:8080"})))
    f = next(f for f in fs if f.id == "network.proxy-https-url")
    assert fix_text(f) == "export HTTPS_PROXY='http://<user>:<password>@proxy.corp:8080'"


def test_clock_skew_from_a_servers_date():
    from dataclasses import replace

    skewed = replace(HUB_OK, local_date="2026-11-26T12:00:00+00:00")
    (f,) = findings_of(network.clock_check, facts(network=net_facts(skewed)))
    assert f.id == "network.clock-skew" and "120 min ahead of huggingface.co's" in f.title


def test_xet_storage_blocked_while_the_hub_answers():
    xet = EndpointResult("xet", "https://cas-server.xethub.hf.co", "cas-server.xethub.hf.co", 443,
                         (Phase("dns", True, 0.01), Phase("tcp", False, 4.0, "cannot connect to "
                                                          "cas-server.xethub.hf.co:443: timed out")))
    fs = {f.id: f for f in findings_of(network.endpoints_check, facts(network=net_facts(HUB_OK, xet)))}
    assert fix_text(fs["network.xet-unreachable"]).startswith("export HF_HUB_DISABLE_XET=1")


def test_the_hub_verifies_but_the_envs_stack_does_not_so_fix_ssl_uses_truststore(tmp_path):
    """The CA is in the OS store (the raw probe, which trusts it, passes) but the target's
    requests-based huggingface_hub reads only certifi: the plan installs and injects truststore."""
    from llmdoctor.fixes import ssl_trust

    site = tmp_path / "site"
    site.mkdir()
    call = HubCall(ok=False, version="0.36.0", client="requests",
                   errors=("SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
                           "certificate in certificate chain",))
    f = facts(target=target(purelib=str(site), prefix=str(tmp_path)), network=net_facts(HUB_OK, call=call))
    fs = {x.id: x for x in findings_of(network.hub_client_check, f)}
    assert "only one of them" in fs["network.hub-client-tls"].detail
    plan = ssl_trust.plan(FixContext(target=resolve_target(), environ={"HOME": str(tmp_path)}, facts=f))
    assert [c.path for c in plan.changes] == [str(site / "llmdoctor-truststore.pth")]
    assert plan.commands[0][-1] == "truststore>=0.10" and plan.undo_commands[0][-1] == "truststore"
    assert not (site / "llmdoctor-truststore.pth").exists()  # planning writes nothing


def test_pip_config_files_are_read_where_pip_reads_them(tmp_path):
    home = tmp_path / "home"
    conf = home / ".config" / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[global]\nindex-url = https://pypi.tuna.tsinghua.edu.cn/simple\ntrusted-host = pypi.tuna.tsinghua.edu.cn\n")
    (home / ".condarc").write_text("channels:\n  - defaults\nssl_verify: false\n")
    ctx = ProbeContext(target=resolve_target(), environ={"HOME": str(home)})
    cfg = read_pip_config(ctx)
    (pip,) = [p for p in cfg.pip if p.path == str(conf)]
    assert pip.index_url == "https://pypi.tuna.tsinghua.edu.cn/simple" and pip.trusted_host == "pypi.tuna.tsinghua.edu.cn"
    assert [c.ssl_verify for c in cfg.conda if c.path == os.path.join(home, ".condarc")] == ["false"]


def test_python_313_strict_x509_rejects_a_proxy_ca():
    call = HubCall(ok=False, version="1.1.0", client="httpx",
                   errors=("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Basic "
                           "Constraints of CA cert not marked critical (_ssl.c:1032)",))
    t = target(distributions=(dist("huggingface-hub", "1.1.0"),))
    (f,) = findings_of(network.hub_client_check, facts(target=t, network=net_facts(HUB_OK, call=call)))
    assert f.id == "network.hub-client-strict" and "a bundle cannot fix this" in fix_text(f)


def test_a_replayed_hub_call_without_its_endpoint_names_the_probed_endpoint():
    """Reports whose hub call lacks "endpoint" (older ones, or a call that died before saying
    it) name the endpoint the network probe asked, never "None"."""
    t = target(distributions=(dist("huggingface-hub", "0.36.0"), dist("requests", "2.32.4")))
    for call in (HubCall(ok=True, version="0.36.0", client="requests"),
                 HubCall(ok=False, version="0.36.0", client="requests", errors=("ConnectionError: reset",))):
        (f,) = findings_of(network.hub_client_check, facts(target=t, network=net_facts(HUB_OK, call=call)))
        assert "None" not in f.title and "https://huggingface.co" in f.title, f.title


def test_a_hub_call_skipped_at_its_deadline_or_without_a_result_is_worded_by_the_check():
    def title(call):
        (f,) = findings_of(network.hub_client_check, facts(network=net_facts(call=call), target=target()))
        assert f.status is Status.SKIP
        return f.title

    assert title(HubCall(ok=False, skip_kind="timeout", seconds=8.5)) == \
        "the target's huggingface_hub call did not finish within 8.5 s"
    assert title(HubCall(ok=False, skip_kind="no-result", skip_detail="Fatal Python error: init_fs_encoding")) == \
        "the target's huggingface_hub call did not finish: Fatal Python error: init_fs_encoding"
    assert title(HubCall(ok=False, skip_kind="import-error", skip_detail="ImportError: cannot import name 'x'")) == \
        "huggingface_hub does not import: ImportError: cannot import name 'x'"


def test_a_report_from_before_hub_call_skip_still_says_why_no_call_was_made():
    from llmdoctor.facts import load

    old = {"endpoint": "https://huggingface.co", "endpoint_from": "default", "repo": "openai-community/gpt2",
           "hub_call": {"ok": False, "skipped": "huggingface_hub does not import: ModuleNotFoundError: no"}}
    (f,) = findings_of(network.hub_client_check, facts(network=load(NetworkFacts, old), target=target()))
    assert f.status is Status.SKIP and f.title == "huggingface_hub does not import: ModuleNotFoundError: no"
