"""The edge proxy: nginx in front of Ray Serve's HTTP proxy, configured from ``configs/service.yaml`` ``edge``.

Ray Serve's proxy holds a connection whose request headers never finish (it has no header timeout, and no
limit of requests per client): a client that opens many such connections, or sends requests faster than the
service can answer them, reaches every tenant (docs/ARCHITECTURE.md "Edge proxy"). The edge bounds what a
client can hold before a request reaches Ray Serve:

- a request's headers must arrive within ``edge.header_timeout_seconds`` (else the connection is closed),
  its body must keep arriving (``body_timeout_seconds`` between two reads) and is read whole by the edge
  before it is passed on (a stalled body holds none of the Ingress' slots), at most ``http.max_body_bytes``
  (413), an idle keep-alive connection is closed after ``keepalive_seconds``;
- requests of one API key (the ``Authorization`` header) at most ``rate_per_key`` per second with a burst of
  ``burst_per_key``, of one client address ``rate_per_address`` / ``burst_per_address`` (429
  ``rate_limited``), and at most ``connections_per_key`` requests of one key and ``connections_per_address``
  of one address in progress at once (429 ``too_many_connections``: one key's many clients cannot fill Ray
  Serve's queue, whose overflow is shed for every tenant alike);
- TLS when ``tls_certificate`` and ``tls_key`` are set.

Every refusal of the edge is the service's error body (``serve_app.api.error_body``, a ``code`` of
``engine.validation.ERRORS``); an answer of Ray Serve passes unchanged. ``python -m serve_app.edge --prefix
DIR`` writes ``DIR/nginx.conf``; ``scripts/edge start`` runs it.
"""

import argparse
import hashlib
import json
import os
import pwd
import stat
from pathlib import Path

import yaml

from serve_app.api import error_body
from serve_app.settings import ROOT, load_settings

#: What the edge answers instead of nginx's own status: nginx status -> (status, field, message, code).
#: 430 is the status the config gives ``limit_conn`` refusals (nginx's own is 503, the status of a shed request).
REFUSALS = {
    429: (429, "authorization", "too many requests of this API key or client address per second: retry after "
          "Retry-After", "rate_limited"),
    430: (429, "connection", "too many requests of this API key or client address in progress at once: retry "
          "after Retry-After", "too_many_connections"),
    413: (413, "body", "larger than the service accepts (configs/service.yaml http.max_body_bytes)",
          "body_too_large"),
    400: (400, "request", "the request line or headers are malformed or too large", "malformed_request"),
    502: (503, "service", "the service behind the edge proxy does not answer: retry after Retry-After",
          "service_unavailable"),
}
#: nginx statuses answered like another one of :data:`REFUSALS` (URI too long, headers too large: 400; the
#: upstream timed out: 502).
SAME_AS = {414: 400, 494: 400, 504: 502}
#: Statuses whose refusal tells when to retry (seconds).
RETRY_AFTER = {429: 1, 503: 1}
#: Request header buffers: 4 of 16 KiB (a larger request line or header: 400).
BUFFERS = "4 16k"
#: The user nginx's workers run as when it is started by root (least privilege: they only read sockets and
#: the body buffers).
NOBODY = ("nobody", "nogroup")


def upstream_address(serve_config=None):
    """``host:port`` of Ray Serve's HTTP proxy (``serve_config.yaml`` ``http_options``).

    Parameters
    ----------
    serve_config : path-like, optional
        Default: the checkout's ``serve_config.yaml``.
    """
    conf = yaml.safe_load(Path(serve_config or ROOT / "serve_config.yaml").read_text())["http_options"]
    return f"{conf['host']}:{conf['port']}"


def refusal_location(status):
    """The nginx named location that answers the edge's refusal of nginx status ``status`` (JSON body)."""
    answered, field, message, code = REFUSALS[status]
    body = json.dumps(error_body(answered, field, f"{field}: {message}", code), separators=(",", ":"))
    if "'" in body or "$" in body or "\\" in body:  # nginx would read them as quotes, variables or escapes
        raise ValueError(f"refusal {status}: its body must not hold ', $ or \\")
    retry = (f"      add_header Retry-After {RETRY_AFTER[answered]} always;\n"
             if answered in RETRY_AFTER else "")
    return (f"    location @refused_{status} {{\n      default_type application/json;\n{retry}"
            f"      return {answered} '{body}';\n    }}\n")


def temp_directory(prefix):
    """The body and response buffers' directory of an edge whose config is in ``prefix`` (outside it).

    ``/var/tmp/pvcast-edge-<12 hex of the prefix's path>``: the workers (``nobody`` when started by root)
    must write it, and may not reach the prefix (the config may hold the path of a TLS key).
    """
    digest = hashlib.sha1(str(Path(prefix).resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"pvcast-edge-{digest}"


def nginx_config(settings, upstream, prefix, temp, run_as=None):
    """The text of ``nginx.conf`` of the edge.

    Parameters
    ----------
    settings : dict
        ``configs/service.yaml`` (its ``edge`` and ``http.max_body_bytes``).
    upstream : str
        ``host:port`` of Ray Serve's HTTP proxy (:func:`upstream_address`).
    prefix : path-like
        nginx's prefix: the pid file and logs.
    temp : path-like
        The buffers' directory (:func:`temp_directory`).
    run_as : tuple of str, optional
        (user, group) of the workers (a ``user`` directive: only when nginx starts as root).

    Raises
    ------
    ValueError
        Only one of ``edge.tls_certificate`` and ``edge.tls_key`` is set.
    """
    edge, prefix, temp = settings["edge"], Path(prefix), Path(temp)
    cert, key = edge.get("tls_certificate"), edge.get("tls_key")
    if (cert is None) != (key is None):
        raise ValueError("edge: tls_certificate and tls_key are set together or not at all")
    tls = (f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
           "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:pvcast_tls:1m;\n") if cert else ""
    mb = int(edge["zone_megabytes"])
    statuses = sorted(REFUSALS) + sorted(SAME_AS)
    # "=status": the answer's status (a named location's `return` keeps nginx's own otherwise)
    pages = "".join(f"    error_page {s} ={REFUSALS[SAME_AS.get(s, s)][0]} @refused_{SAME_AS.get(s, s)};\n"
                    for s in statuses)
    temps = "".join(f"  {kind}_temp_path {temp / kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
    return f"""# written by python -m serve_app.edge from configs/service.yaml edge: do not edit
{f"user {run_as[0]} {run_as[1]};" if run_as else ""}
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server_tokens off;
  default_type application/octet-stream;
{temps}  client_header_timeout {edge["header_timeout_seconds"]}s;
  client_body_timeout {edge["body_timeout_seconds"]}s;
  send_timeout {edge["body_timeout_seconds"]}s;
  keepalive_timeout {edge["keepalive_seconds"]}s;
  client_max_body_size {int(settings["http"]["max_body_bytes"])};
  client_header_buffer_size 1k;
  large_client_header_buffers {BUFFERS};
  limit_req_zone $http_authorization zone=per_key:{mb}m rate={edge["rate_per_key"]}r/s;
  limit_req_zone $binary_remote_addr zone=per_address:{mb}m rate={edge["rate_per_address"]}r/s;
  limit_conn_zone $binary_remote_addr zone=connections:{mb}m;
  limit_conn_zone $http_authorization zone=key_connections:{mb}m;
  limit_req_status 429;
  limit_conn_status 430;
  limit_req_log_level info;  # below error_log's level: a flood of refusals does not fill the disk with lines
  limit_conn_log_level info;
  upstream ray_serve {{
    server {upstream} max_fails=0;
    keepalive 32;
  }}
  server {{
    listen {edge["listen"]}{" ssl" if cert else ""};
{tls}    limit_req zone=per_key burst={edge["burst_per_key"]} nodelay;
    limit_req zone=per_address burst={edge["burst_per_address"]} nodelay;
    limit_conn connections {edge["connections_per_address"]};
    limit_conn key_connections {edge["connections_per_key"]};
{pages}    location / {{
      proxy_pass http://ray_serve;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering on;
      proxy_connect_timeout 5s;
      proxy_send_timeout {edge["upstream_timeout_seconds"]}s;
      proxy_read_timeout {edge["upstream_timeout_seconds"]}s;
    }}
{"".join(refusal_location(s) for s in sorted(REFUSALS))}  }}
}}
"""


def private_directory(path, owner):
    """Create ``path`` (mode 700, owned by ``owner``'s uid and gid) or check the one there is.

    Raises
    ------
    PermissionError
        ``path`` is a link, not a directory, or owned by another user (another user's directory in a shared
        ``/var/tmp`` could read the bodies).
    """
    path = Path(path)
    try:
        path.mkdir(mode=0o700)
        os.chown(path, owner.pw_uid, owner.pw_gid)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner.pw_uid:
        raise PermissionError(f"{path}: not a directory of {owner.pw_name} (a link or another user's)")
    os.chmod(path, 0o700)
    return path


def write_config(prefix, settings=None, upstream=None):
    """Write ``prefix/nginx.conf`` (and the buffers' directory) for the edge; returns the config's path.

    Started by root, the workers run as ``nobody`` (:data:`NOBODY`); otherwise as the user who starts it.
    """
    settings = settings or load_settings()
    prefix = Path(prefix).resolve()
    prefix.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = os.geteuid() == 0
    owner = pwd.getpwnam(NOBODY[0]) if root else pwd.getpwuid(os.geteuid())
    temp = private_directory(temp_directory(prefix), owner)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(settings, upstream or upstream_address(), prefix, temp,
                                 run_as=NOBODY if root else None))
    return conf


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m serve_app.edge", description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", required=True, help="directory of nginx.conf, the pid file and the error log")
    parser.add_argument("--upstream", help="host:port of Ray Serve's HTTP proxy (default: serve_config.yaml's)")
    args = parser.parse_args(argv)
    print(write_config(args.prefix, upstream=args.upstream))


if __name__ == "__main__":
    main()
