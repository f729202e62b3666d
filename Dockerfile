# The image deploy/kuberay-rayservice.yaml runs (Ray head, Ray workers and the migration Job).
#
# Build (from the repository root; the tag is the one the manifest names, checked by
# tests/deploy/test_manifest.py):
#   docker build -t ghcr.io/pvcast/pvcast:2.0.0 .
#
# Base: Ray's own image of the Ray version pyproject.toml pins (ray[serve]==2.60.0) on the Python
# pyproject.toml requires (3.11), so the cluster's Ray and the app's Ray are one install; KubeRay's
# rayVersion in the manifest is the same number. pip installs the project from pyproject.toml (its
# dependencies; PVCAST_EXTRAS selects optional groups, e.g. --build-arg PVCAST_EXTRAS=bench for
# py-spy; none by default: test and bench are for development). configs/ and models/ ship inside
# the wheel (engine.configs, engine.models) and are also copied to /app, the pods' workingDir
# (PVCAST_MODELS_DIR=/app/models in serveConfigV2).
#
# Nothing secret is in the image: the database password (PGPASSWORD) and the Ray token
# (RAY_AUTH_TOKEN, set by KubeRay's authOptions) come from Kubernetes secrets at run time
# (deploy/kuberay-rayservice.yaml); .dockerignore keeps .venv, .git, out/ and local files out.
FROM rayproject/ray:2.60.0-py311

ARG PVCAST_EXTRAS=""
# the base image runs as user ray (group users); /app is its own so that pip can build there
USER root
RUN mkdir -p /app && chown ray:users /app
USER ray
WORKDIR /app
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users engine ./engine
COPY --chown=ray:users serve_app ./serve_app
COPY --chown=ray:users configs ./configs
COPY --chown=ray:users models ./models
COPY --chown=ray:users serve_config.yaml ./
RUN pip install --no-cache-dir ".${PVCAST_EXTRAS:+[$PVCAST_EXTRAS]}" \
    && python -c "import engine.resources, serve_app.app" \
    && pvcast --help >/dev/null
ENV OMP_NUM_THREADS=1
# Idle Ray task workers are kept for an hour instead of Ray's 1 s beyond the node's free CPUs: a fleet
# request's feature tasks then find warm workers instead of starting processes (scripts/ray_env, the same
# setting for local instances; docs/ARCHITECTURE.md "Scaling out").
ENV RAY_idle_worker_killing_time_threshold_ms=3600000
