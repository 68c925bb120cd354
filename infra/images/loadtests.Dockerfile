# The Locust image for in-cluster load tests (infra/components/load_test.py): the loadtests/
# suites and the SLO file they read. Slim, non-root, no TensorFlow.
# Build from the repository root: docker build -f infra/images/loadtests.Dockerfile -t tfship-loadtests .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY tfship ./tfship
COPY loadtests ./loadtests
COPY monitoring/__init__.py monitoring/slo.py monitoring/slo.yaml ./monitoring/
RUN python -m venv /opt/tfship \
 && /opt/tfship/bin/pip install --constraint requirements.lock ".[loadtests,monitoring]" \
 && ! /opt/tfship/bin/python -c "import tensorflow" 2>/dev/null

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/tfship/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 tfship \
 && useradd --system --uid 10001 --gid tfship --home-dir /nonexistent --shell /usr/sbin/nologin tfship
COPY --from=build /opt/tfship /opt/tfship
COPY loadtests /app/loadtests
WORKDIR /app
USER 10001:10001
EXPOSE 5557 8089
# The persona locustfiles (each also runs alone with `locust -f`).
ENTRYPOINT ["locust", "-f", "/app/loadtests/predict.py,/app/loadtests/registry_reader.py,/app/loadtests/registry_writer.py"]
