"""Application builder for ``serve_config.yaml`` (``import_path: serve_app.app:build_app``)."""

from serve_app.forecaster import Forecaster
from serve_app.ingress import Ingress
from serve_app.settings import load_settings
from serve_app.writer import Writer


def build_app(args):
    """Ingress -> Forecaster (autoscaled) -> Writer, configured from ``args['service_config']``."""
    settings = load_settings(args.get("service_config", "configs/service.yaml"))
    writer = Writer.bind(settings)
    return Ingress.bind(Forecaster.bind(settings, writer), settings)
