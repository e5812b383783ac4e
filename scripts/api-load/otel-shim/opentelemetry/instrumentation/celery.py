"""No-op stand-in for opentelemetry-instrumentation-celery (see flask.py)."""


class CeleryInstrumentor:
    def instrument(self, *args, **kwargs):
        return None
