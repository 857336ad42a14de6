"""dask_address: tls:// takes its certificates from Dask's configuration; plain tcp:// off-host is warned about."""

from __future__ import annotations

import logging

import dask
import distributed  # noqa: F401  (loads its configuration defaults before dask.config.set below)
import pytest

from animalpose.errors import ConfigError
from flows.runners import dask_client_kwargs, task_runner


def test_tls_without_certificates_is_refused_naming_the_setting():
    with dask.config.set({"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None}):
        with pytest.raises(ConfigError, match=r"dask_address: tls://gpu:8786 is TLS but .*ca-file / client\.cert"):
            dask_client_kwargs("tls://gpu:8786")


def test_tls_with_certificates_connects_with_them(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "me.pem", "me.key"))
    with dask.config.set({"distributed.comm.tls.ca-file": str(ca), "distributed.comm.tls.client.cert": str(cert),
                          "distributed.comm.tls.client.key": str(key)}):
        kwargs = dask_client_kwargs("tls://gpu:8786")
        runner = task_runner(0, "tls://gpu:8786")
    sec = kwargs["security"]
    assert (sec.tls_ca_file, sec.tls_client_cert, sec.tls_client_key) == (str(ca), str(cert), str(key))
    assert runner.client_kwargs["security"].tls_ca_file == str(ca)


def test_plain_tcp_off_host_is_warned_about_loopback_is_not(caplog):
    with caplog.at_level(logging.WARNING, logger="flows.runners"):
        assert dask_client_kwargs("tcp://127.0.0.1:8786") == {}
        assert not caplog.records
        assert dask_client_kwargs("tcp://10.0.0.5:8786") == {}
    assert "unauthenticated" in caplog.text and "10.0.0.5" in caplog.text


def test_an_unknown_scheme_is_refused():
    with pytest.raises(ConfigError, match=r"dask_address: http://x:8786: expected tcp://host:port or tls://"):
        dask_client_kwargs("http://x:8786")
