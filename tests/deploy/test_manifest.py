"""deploy/kuberay-rayservice.yaml runs the committed service: the same Serve config, the image the
Dockerfile builds, Ray token authentication on (fast: files only, no cluster, no image build)."""

import re
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy/kuberay-rayservice.yaml"

#: The intended differences of the manifest's serveConfigV2 from serve_config.yaml: path -> (value in the
#: manifest, reason). Every other entry must be equal; each listed path must really differ.
INTENDED = {
    ("applications", "pvcast", "runtime_env", "env_vars", "PVCAST_DATABASE_URL"):
        ("postgresql://pvcast_service@pvcast-timescaledb:5432/pvcast",
         "the in-cluster TimescaleDB service instead of the project's loopback TimescaleDB (password: PGPASSWORD "
         "from a secret)"),
    ("applications", "pvcast", "runtime_env", "env_vars", "PVCAST_MODELS_DIR"):
        ("/app/models", "the models folder of the image (Dockerfile: copied to the pods' workingDir /app)"),
    ("http_options", "host"):
        ("0.0.0.0", "the pod's interfaces, reached only through KubeRay's ClusterIP serve Service behind a TLS "
                    "ingress; locally the proxy stays on loopback"),
}


def documents():
    return list(yaml.safe_load_all(MANIFEST.read_text()))


def rayservice():
    return next(d for d in documents() if d["kind"] == "RayService")


def flat(value, path=()):
    """{path: leaf} of nested dicts/lists; applications keyed by name (order is not a difference)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, (*path, key)).items()}
    if isinstance(value, list):
        if path and path[-1] == "applications":
            return {k: v for app in value for k, v in flat(app, (*path, app["name"])).items()}
        return {k: v for i, item in enumerate(value) for k, v in flat(item, (*path, i)).items()}
    return {path: value}


def containers(node=None):
    """Every container of the manifest (RayService head and workers, the migration Job)."""
    node = documents() if node is None else node
    if isinstance(node, dict):
        return ([node] if "image" in node else []) + [c for item in node.values() for c in containers(item)]
    if isinstance(node, list):
        return [c for item in node for c in containers(item)]
    return []


def images():
    return [c["image"] for c in containers()]


def test_serve_config_v2_is_serve_config_yaml_except_the_intended_differences():
    local = flat(yaml.safe_load((ROOT / "serve_config.yaml").read_text()))
    cluster = flat(yaml.safe_load(rayservice()["spec"]["serveConfigV2"]))
    differing = {p for p in local.keys() | cluster.keys() if local.get(p, "<absent>") != cluster.get(p, "<absent>")}
    assert differing == set(INTENDED), {p: (local.get(p), cluster.get(p)) for p in differing ^ set(INTENDED)}
    for path, (value, reason) in INTENDED.items():
        assert cluster[path] == value, (path, reason)


def test_manifest_images_are_the_dockerfiles_documented_build_on_the_pinned_ray():
    dockerfile = (ROOT / "Dockerfile").read_text()
    tag = re.search(r"^#\s+docker build -t (\S+) \.$", dockerfile, re.M).group(1)
    assert set(images()) == {tag} and len(images()) == 3
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert tag.rsplit(":", 1)[1] == re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    ray = re.search(r'"ray\[serve\]==([^"]+)"', pyproject).group(1)
    assert ray == version("ray") == rayservice()["spec"]["rayClusterConfig"]["rayVersion"]
    assert re.search(r"^FROM rayproject/ray:(\S+)$", dockerfile, re.M).group(1) == f"{ray}-py311"


def test_ray_token_authentication_is_on_and_nothing_secret_is_written():
    auth = rayservice()["spec"]["rayClusterConfig"]["authOptions"]
    assert auth["mode"] == "token" and auth["secretName"]
    text = MANIFEST.read_text() + (ROOT / "Dockerfile").read_text()
    assert "RAY_AUTH_MODE" not in re.sub(r"#.*", "", text)  # nothing turns it off (KubeRay sets it from authOptions)
    secret_env = [e for c in containers() for e in c.get("env", []) if re.search("PASSWORD|TOKEN", e["name"])]
    assert secret_env and all("value" not in e and "secretKeyRef" in e["valueFrom"] for e in secret_env), secret_env
    assert not re.search(r"^\s*(ENV|ARG)\s+\S*(PASSWORD|TOKEN|SECRET)", (ROOT / "Dockerfile").read_text(), re.M | re.I)


def test_one_tenant_never_holds_every_ingress_slot():
    """configs/service.yaml http.max_ongoing_per_tenant stays below the Ingress' max_ongoing_requests
    (serve_config.yaml): the slots between them are always left to the other tenants (docs/api.md
    "Limits of one tenant"); a bound at or above it would keep nothing."""
    serve = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    ingress, = [d for a in serve["applications"] for d in a["deployments"] if d["name"] == "Ingress"]
    most = yaml.safe_load((ROOT / "configs/service.yaml").read_text())["http"]["max_ongoing_per_tenant"]
    assert most is not None and 0 < most < ingress["max_ongoing_requests"]
