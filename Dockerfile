# One image for the API and the workers. EXTRAS=train adds torch/transformers/DeepSpeed (workers);
# the API image leaves them out (the web process never imports them).
FROM python:3.11-slim AS base
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml requirements.lock README.md alembic.ini ./
COPY backend ./backend
COPY worker ./worker
COPY training ./training
COPY migrations ./migrations
COPY frontend ./frontend
# Editable, so that migrations/ and frontend/ are found next to the code at /app.
RUN pip install -c requirements.lock -e ".${EXTRAS:+[$EXTRAS]}"
RUN useradd --create-home --uid 10001 app && mkdir -p /artifacts && chown app /artifacts
USER app
ENV ARTIFACTS_DIR=/artifacts
EXPOSE 8000
CMD ["saferlhf", "serve", "--host", "0.0.0.0", "--port", "8000"]
