"""`pvcast keys create|list|revoke` against a scratch database (the service role's URL)."""

import json
import stat
import types

import pytest

from engine import cli, store

from storehelpers import run


@pytest.fixture
def pvcast(service_url, monkeypatch, capsys):
    """``pvcast keys ARGS`` in this process -> (exit code, stdout, stderr)."""
    monkeypatch.setenv("PVCAST_DATABASE_URL", service_url)

    def keys(_, *args):
        code = cli.main(["keys", *args])
        out = capsys.readouterr()
        return types.SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return keys


def test_create_list_revoke(service_url, pvcast, tmp_path):
    key_file = tmp_path / "key"
    created = pvcast(service_url, "create", "--tenant", "cli-tenant", "--scopes", "read", "--key-file", str(key_file))
    assert created.returncode == 0, created.stderr
    key = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key not in created.stdout + created.stderr  # written to the file only
    info = json.loads(created.stdout)
    assert run(service_url, lambda conn: store.key_principal(conn, key)) == ("cli-tenant", ("read",))
    listed = [json.loads(line) for line in pvcast(service_url, "list", "--tenant", "cli-tenant").stdout.splitlines()]
    assert info["key_id"] in [k["key_id"] for k in listed]
    assert pvcast(service_url, "revoke", info["key_id"]).returncode == 0
    assert run(service_url, lambda conn: store.key_principal(conn, key)) is None


def test_unknown_key_and_bad_scopes_exit_2_with_the_reason(service_url, pvcast):
    unknown = pvcast(service_url, "revoke", "000000000000")
    bad = pvcast(service_url, "create", "--tenant", "cli-tenant", "--scopes", "root")
    assert (unknown.returncode, bad.returncode) == (2, 2)
    assert "key_id 000000000000 is unknown" in unknown.stderr and "scopes" in bad.stderr
