"""Entry point the Functions host indexes: wiring only, the functions live in their blueprints."""

import logging
import os

import azure.functions as func

from enqueue_blob import bp as enqueue_bp
from export_jobs import bp as export_bp
from http_status import bp as http_bp
from poll_status import bp as poll_bp
from retention import bp as retention_bp
from shared import telemetry

# The Azure SDKs log every HTTP request and response at INFO; host.json cannot reach the
# worker's Python loggers, and our own one-line-per-event logs are what operators read.
logging.getLogger("azure").setLevel(logging.WARNING)
# Once per process, before any function runs: where traces, metrics and logs go.
telemetry.configure(os.environ)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (enqueue_bp, poll_bp, http_bp, export_bp, retention_bp):
    app.register_functions(blueprint)
