"""Ray Serve deployments of pvcast (ingress, forecaster, writer): thin glue over engine/."""
