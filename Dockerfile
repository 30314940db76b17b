# casework image: the API, the connectors and every pipeline stage (choose with the command);
# docker-compose.yml runs it as the api, init and worker services (docs/operations.md).
# The workbench's browser assets (htmx, Swagger UI, ReDoc) come from the npm registry, pinned by package-lock.json.
FROM node:20-bookworm-slim AS web-assets
WORKDIR /assets
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng util-linux fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors connectors
COPY ingest ingest
COPY classify classify
COPY casestore casestore
COPY api api
RUN pip install --no-cache-dir .
COPY --from=web-assets /assets/node_modules /app/node_modules
ENV CASEWORK_DATA_DIR=/data OMP_THREAD_LIMIT=1 CASEWORK_WEB__ASSETS_DIR=/app/node_modules PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8000 9464
CMD ["casework", "serve", "--host", "0.0.0.0"]
