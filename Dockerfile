# The flow image: every RetainWise flow (score-upload, train-model, migrate, reap-stale) and the
# SQS trigger run from it. The ECS worker starts it with `python -m prefect.engine`; the trigger
# service overrides the command with `retainwise trigger`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libpq for psycopg is bundled by psycopg[binary]; libgomp for scikit-learn's OpenMP
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/retainwise

# dependencies first, pinned by constraints.txt, so a code change does not reinstall them
COPY pyproject.toml constraints.txt ./
RUN mkdir -p retainwise flows tasks models migrations \
 && touch retainwise/__init__.py flows/__init__.py tasks/__init__.py models/__init__.py \
          migrations/__init__.py \
 && pip install -c constraints.txt . \
 && pip uninstall -y retainwise

COPY retainwise ./retainwise
COPY flows ./flows
COPY tasks ./tasks
COPY models ./models
COPY migrations ./migrations
COPY prefect.yaml ./
RUN pip install --no-deps -c constraints.txt . \
 && useradd --system --uid 10001 --home-dir /opt/retainwise retainwise

USER retainwise
# state a flow writes lives in S3, the database and MLflow; this is only scratch space
ENV RETAINWISE_HOME=/tmp/retainwise
CMD ["python", "-m", "prefect.engine"]
