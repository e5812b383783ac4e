"""No-op stand-in for opentelemetry-instrumentation-flask (not packaged in Debian 12), used
only when running the real api code locally (scripts/api-load.ts --app-dir). The real image
has the real instrumentation: its memory is somewhat above what runs with this shim."""


class FlaskInstrumentor:
    def instrument_app(self, app, *args, **kwargs):
        return None
